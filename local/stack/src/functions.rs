//! The registry of the bundle's functions: each is started in-process from the environment the
//! template gives it and invoked with JSON, exactly as Lambda invokes its `main` (the same
//! `Function::start` and `Function::handle`, the event serialised and parsed as Lambda does).
//! Adding a function to the local stack is one line in [`registry`].

use anyhow::bail;
use aws_config::SdkConfig;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;
use shared::lambda::function::{self, Function};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A started function: JSON in, JSON out, with the invocation's deadline.
pub type InvokeFn = Arc<
    dyn Fn(serde_json::Value, Instant) -> BoxFuture<'static, anyhow::Result<serde_json::Value>>
        + Send
        + Sync,
>;

/// An HTTP API function.
pub type HttpFn = Arc<
    dyn Fn(ApiGatewayV2httpRequest) -> BoxFuture<'static, ApiGatewayV2httpResponse> + Send + Sync,
>;
/// An SQS consumer.
pub type SqsFn = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;
/// A scheduled invocation (moto never fires schedules: the stack fires them on demand).
pub type ScheduleFn =
    Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<serde_json::Value>> + Send + Sync>;

type StartFn =
    fn(BTreeMap<String, String>, SdkConfig) -> BoxFuture<'static, anyhow::Result<InvokeFn>>;

/// One function of the bundle, by its binary name.
struct Registration {
    name: &'static str,
    start: StartFn,
}

fn register<F: Function>() -> Registration {
    Registration {
        name: F::NAME,
        start: |vars, aws| {
            Box::pin(async move {
                let namespace = vars
                    .get("METRICS_NAMESPACE")
                    .cloned()
                    .unwrap_or_else(|| shared::metrics::DEFAULT_NAMESPACE.to_owned());
                let lookup = move |name: &str| vars.get(name).cloned();
                let started = F::start(&lookup, &aws)
                    .await
                    .map_err(|e| anyhow::anyhow!(shared::error::chain(e.as_ref())))?;
                let started = Arc::new(started);
                let invoke: InvokeFn = Arc::new(move |payload, deadline| {
                    let started = Arc::clone(&started);
                    let namespace = namespace.clone();
                    Box::pin(async move {
                        let event: F::Event = serde_json::from_value(payload)?;
                        let response = shared::metrics::with_namespace(
                            namespace,
                            function::invoke(started.as_ref(), event, deadline),
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!(shared::error::chain(&e)))?;
                        Ok(serde_json::to_value(response)?)
                    })
                });
                Ok(invoke)
            })
        },
    }
}

/// Every function of the bundle. Adding one is a line here (and its `template.yaml` resource).
fn registry() -> Vec<Registration> {
    vec![
        register::<whatsapp_webhook::Lambda>(),
        register::<dam_webhook::Lambda>(),
        register::<detect_asset_changes::Lambda>(),
        register::<send_whatsapp_message::Lambda>(),
        register::<track_delivery::Lambda>(),
        register::<route_inbound::Lambda>(),
        register::<notify_review_request::Lambda>(),
        register::<alert_asset_issue::Lambda>(),
        register::<ingest_field_media::Lambda>(),
        register::<scan_rights_expiry::Lambda>(),
        register::<campaign_rollout::Lambda>(),
        register::<operator_page::Lambda>(),
        register::<share_approved_asset::Lambda>(),
        register::<intake_ugc_submission::Lambda>(),
    ]
}

/// Starts the function `binary` from `vars`, as its cold start would.
pub async fn start(
    binary: &str,
    vars: BTreeMap<String, String>,
    aws: &SdkConfig,
) -> anyhow::Result<InvokeFn> {
    let Some(registration) = registry().into_iter().find(|r| r.name == binary) else {
        bail!("the local stack's registry has no function `{binary}`");
    };
    (registration.start)(vars, aws.clone()).await
}

/// `invoke` as an HTTP API function whose invocations last at most `timeout`.
pub fn http(invoke: InvokeFn, timeout: Duration) -> HttpFn {
    Arc::new(move |request| {
        let invoke = Arc::clone(&invoke);
        Box::pin(async move {
            let answer = async {
                let payload = serde_json::to_value(request)?;
                let response = invoke(payload, Instant::now() + timeout).await?;
                Ok::<_, anyhow::Error>(serde_json::from_value(response)?)
            };
            match answer.await {
                Ok(response) => response,
                // API Gateway answers 500 when the integration fails.
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "function failed");
                    shared::lambda::http::text(500, "Internal Server Error")
                }
            }
        })
    })
}

/// `invoke` as an SQS consumer whose invocations last at most `timeout`. A failed invocation
/// fails the whole batch, as with Lambda.
pub fn sqs(invoke: InvokeFn, timeout: Duration) -> SqsFn {
    Arc::new(move |event| {
        let invoke = Arc::clone(&invoke);
        Box::pin(async move {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| r.message_id.clone())
                .collect();
            let answer = async {
                let payload = serde_json::to_value(event)?;
                let response = invoke(payload, Instant::now() + timeout).await?;
                Ok::<SqsBatchResponse, anyhow::Error>(serde_json::from_value(response)?)
            };
            match answer.await {
                Ok(response) => response,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "consumer failed: the whole batch returns");
                    let mut response = SqsBatchResponse::default();
                    response.batch_item_failures = ids
                        .into_iter()
                        .map(|id| {
                            let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
                            failure.item_identifier = id;
                            failure
                        })
                        .collect();
                    response
                }
            }
        })
    })
}

/// `invoke` fired by a schedule with the template's `Input`.
pub fn schedule(invoke: InvokeFn, input: serde_json::Value, timeout: Duration) -> ScheduleFn {
    Arc::new(move || {
        let invoke = Arc::clone(&invoke);
        let input = input.clone();
        Box::pin(async move { invoke(input, Instant::now() + timeout).await })
    })
}

/// A scheduled function, fired on demand.
#[derive(Clone)]
pub struct Scheduled {
    /// The function's logical id.
    pub function: String,
    /// Its schedule handler.
    pub handler: ScheduleFn,
}

impl std::fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scheduled({})", self.function)
    }
}
