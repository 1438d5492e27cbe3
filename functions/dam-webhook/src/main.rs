use dam_webhook::{Config, connect, handle};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let deps = connect(&config, &shared::aws::load().await).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        handle(&deps, event.payload)
    }))
    .await
}
