//! The AWS SDK configuration every function starts from.

mod http;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};

/// What a function starts from in Lambda: the region, the execution role's credentials and an
/// optional `AWS_ENDPOINT_URL` (the local stack's moto), all from the environment Lambda sets.
/// Nothing else of the SDK's default chain (profiles, SSO, STS web identity, IMDS, ECS) can
/// apply there, so none of it is linked into a bootstrap.
pub fn from_lambda_environment(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SdkConfig, MissingVariable> {
    let region = lookup("AWS_REGION")
        .or_else(|| lookup("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .ok_or(MissingVariable("AWS_REGION"))?;
    let key = lookup("AWS_ACCESS_KEY_ID").ok_or(MissingVariable("AWS_ACCESS_KEY_ID"))?;
    let secret = lookup("AWS_SECRET_ACCESS_KEY").ok_or(MissingVariable("AWS_SECRET_ACCESS_KEY"))?;
    let token = lookup("AWS_SESSION_TOKEN").filter(|t| !t.is_empty());
    let credentials = Credentials::new(key, secret, token, None, "lambda-environment");
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client());
    if let Some(endpoint) = lookup("AWS_ENDPOINT_URL").filter(|e| !e.is_empty()) {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// A variable Lambda always sets is missing: the process is not running where it should.
#[derive(Debug, thiserror::Error)]
#[error("the environment variable {0} is not set (Lambda sets it for every function)")]
pub struct MissingVariable(pub &'static str);

/// The SDK's full default chain (profiles, SSO, IMDS, …), for the operator command on a
/// workstation or in CI.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// A configuration pointing every client at a local emulator (moto) with dummy credentials.
pub async fn local(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .load()
        .await
}

/// The SDK's HTTP client: reqwest, the bundle's one HTTP stack, with the TLS settings of every
/// other client (rustls with ring, the roots of `shared::crypto`).
pub fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    http::client()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn lambda_environment_gives_region_credentials_and_the_endpoint_override() {
        let config = from_lambda_environment(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ]))
        .expect("config");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());
    }

    #[test]
    fn a_missing_lambda_variable_is_named() {
        let error = from_lambda_environment(env(&[("AWS_REGION", "eu-west-1")]))
            .expect_err("no credentials");
        assert_eq!(error.0, "AWS_ACCESS_KEY_ID");
        let error = from_lambda_environment(env(&[])).expect_err("no region");
        assert!(error.to_string().contains("AWS_REGION"), "{error}");
    }
}
