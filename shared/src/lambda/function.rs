//! What every function of the bundle is, so that its `main`, the local stack and the tests start
//! and invoke it the same way: a cold start from its environment, then one handler per invocation,
//! run with the invocation's deadline in scope.

use crate::lambda::deadline;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio::time::Instant;

/// Why a cold start failed (missing settings, unreadable secrets, …), with its cause chain.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A variable source: the process environment in Lambda, the template's variables locally.
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// One Lambda function of the bundle.
pub trait Function: Send + Sync + Sized + 'static {
    /// The binary's name (= package = folder = the template's `BuildProperties.Binary`).
    const NAME: &'static str;
    /// The invocation payload.
    type Event: DeserializeOwned + Send + 'static;
    /// The answer.
    type Response: Serialize + Send + 'static;
    /// A failed invocation (Lambda retries or dead-letters it per its trigger).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The cold start: reads settings from `lookup` (naming every missing one), loads secrets and
    /// configuration, builds clients.
    fn start(
        lookup: Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> impl Future<Output = Result<Self, StartError>> + Send;

    /// Handles one invocation that must finish by `deadline`.
    fn handle(
        &self,
        event: Self::Event,
        deadline: Instant,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
}

/// Starts `F` from the process environment and serves invocations until Lambda stops it.
pub async fn run<F: Function>() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    if let Ok(namespace) = std::env::var("METRICS_NAMESPACE") {
        crate::metrics::set_namespace(namespace);
    }
    let aws = crate::aws::from_lambda_environment(|name| std::env::var(name).ok())?;
    let function = F::start(&|name| std::env::var(name).ok(), &aws).await?;
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<F::Event>| async move {
            let deadline = deadline::from_unix_ms(event.context.deadline);
            invoke(function, event.payload, deadline)
                .await
                .map_err(|error| {
                    tracing::error!(error = %crate::error::chain(&error), "invocation failed");
                    lambda_runtime::Error::from(error)
                })
        },
    ))
    .await
}

/// One invocation of `function` with `deadline` in scope, as Lambda would make it; its metrics
/// are written when it ends.
pub async fn invoke<F: Function>(
    function: &F,
    event: F::Event,
    deadline: Instant,
) -> Result<F::Response, F::Error> {
    crate::metrics::scope(
        F::NAME,
        deadline::scope(deadline, function.handle(event, deadline)),
    )
    .await
}
