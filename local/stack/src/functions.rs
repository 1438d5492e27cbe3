//! The real handlers of every function in the template, wired in-process the way each `main.rs`
//! wires them, from the environment the template gives them.

use anyhow::bail;
use aws_config::SdkConfig;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An HTTP API function.
pub type HttpFn = Arc<
    dyn Fn(ApiGatewayV2httpRequest) -> BoxFuture<'static, ApiGatewayV2httpResponse> + Send + Sync,
>;
/// An SQS consumer.
pub type SqsFn = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;
/// A scheduled invocation (moto never fires schedules: the stack fires them on demand).
pub type ScheduleFn =
    Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<serde_json::Value>> + Send + Sync>;

/// A connected function.
#[derive(Clone)]
pub enum Handler {
    /// Invoked by the HTTP front.
    Http(HttpFn),
    /// Invoked by the queue runner.
    Sqs(SqsFn),
    /// Invoked by a schedule.
    Schedule(ScheduleFn),
    /// A function with several triggers (e.g. a queue and a schedule).
    Many(Vec<Handler>),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http(_) => "Handler::Http",
            Self::Sqs(_) => "Handler::Sqs",
            Self::Schedule(_) => "Handler::Schedule",
            Self::Many(_) => "Handler::Many",
        })
    }
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

impl Handler {
    /// The single-trigger handlers this one stands for.
    pub fn flatten(self) -> Vec<Handler> {
        match self {
            Self::Many(handlers) => handlers.into_iter().flat_map(Self::flatten).collect(),
            single => vec![single],
        }
    }
}

/// Builds a function's dependencies from its environment, as its cold start would.
pub async fn connect(
    binary: &str,
    vars: &BTreeMap<String, String>,
    aws: &SdkConfig,
) -> anyhow::Result<Handler> {
    let lookup = |name: &str| vars.get(name).cloned();
    match binary {
        "whatsapp-webhook" => {
            let config = whatsapp_webhook::Config::from_lookup(lookup)?;
            let deps = Arc::new(whatsapp_webhook::connect(&config, aws).await?);
            Ok(Handler::Http(Arc::new(move |request| {
                let deps = Arc::clone(&deps);
                Box::pin(async move {
                    match whatsapp_webhook::handle(&deps, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                })
            })))
        }
        "dam-webhook" => {
            let config = dam_webhook::Config::from_lookup(lookup)?;
            let deps = Arc::new(dam_webhook::connect(&config, aws).await?);
            Ok(Handler::Http(Arc::new(move |request| {
                let deps = Arc::clone(&deps);
                Box::pin(async move {
                    match dam_webhook::handle(&deps, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                })
            })))
        }
        "detect-asset-changes" => {
            let config = detect_asset_changes::Config::from_lookup(lookup)?;
            let deps = Arc::new(detect_asset_changes::connect(&config, aws).await?);
            let batch_deps = Arc::clone(&deps);
            let sqs: SqsFn = Arc::new(move |event| {
                let deps = Arc::clone(&batch_deps);
                Box::pin(async move {
                    // Lambda's deadline: the template's Timeout (60 s) from now.
                    let deadline_ms = now_ms() + 60_000;
                    detect_asset_changes::handle_batch(&deps, event, deadline_ms).await
                })
            });
            let schedule: ScheduleFn = Arc::new(move || {
                let deps = Arc::clone(&deps);
                Box::pin(async move {
                    let payload = serde_json::json!({ "poll": "recently_edited" });
                    Ok(detect_asset_changes::handle(&deps, payload, now_ms() + 60_000).await?)
                })
            });
            Ok(Handler::Many(vec![
                Handler::Sqs(sqs),
                Handler::Schedule(schedule),
            ]))
        }
        other => bail!("the local stack has no wiring for function `{other}`"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
