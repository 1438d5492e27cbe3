use detect_asset_changes::{Config, connect, handle};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let deps = connect(&config, &shared::aws::load().await).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            handle(deps, event.payload, deadline_ms)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
