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

/// A connected function.
#[derive(Clone)]
pub enum Handler {
    /// Invoked by the HTTP front.
    Http(HttpFn),
    /// Invoked by the queue runner.
    Sqs(SqsFn),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http(_) => "Handler::Http",
            Self::Sqs(_) => "Handler::Sqs",
        })
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
        other => bail!("the local stack has no wiring for function `{other}`"),
    }
}
