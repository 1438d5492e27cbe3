//! What `sam local invoke` needs beside the local stack: functions in containers cannot read
//! `local/secrets.json` or `local/connector.yaml`, so the local stack also puts them where a
//! deployment keeps them, in moto: the secret `<stack>-connector` (Secrets Manager) and the
//! parameter `/<stack>/connector` (SSM). `local/sam-env.json` points every function at them.

use crate::moto::workspace_root;
use anyhow::Context;
use aws_config::SdkConfig;

/// The secret's name for `stack` (what `CONNECTOR_SECRETS_ARN` holds in `local/sam-env.json`).
pub fn secret_name(stack: &str) -> String {
    format!("{stack}-connector")
}

/// The configuration parameter's name for `stack` (`CONNECTOR_CONFIG_PARAMETER`).
pub fn config_parameter(stack: &str) -> String {
    format!("/{stack}/connector")
}

/// Writes the committed local secrets and configuration into moto for `stack` (again on every
/// start: the files may have changed).
pub async fn seed(aws: &SdkConfig, stack: &str) -> anyhow::Result<()> {
    let secrets = std::fs::read_to_string(workspace_root().join("local/secrets.json"))
        .context("local/secrets.json")?;
    let config = std::fs::read_to_string(workspace_root().join("local/connector.yaml"))
        .context("local/connector.yaml")?;
    let manager = aws_sdk_secretsmanager::Client::new(aws);
    let created = manager
        .create_secret()
        .name(secret_name(stack))
        .secret_string(&secrets)
        .send()
        .await;
    if created.is_err() {
        manager
            .put_secret_value()
            .secret_id(secret_name(stack))
            .secret_string(&secrets)
            .send()
            .await
            .context("storing the local secrets in moto")?;
    }
    aws_sdk_ssm::Client::new(aws)
        .put_parameter()
        .name(config_parameter(stack))
        .value(config)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .context("storing the local configuration in moto")?;
    Ok(())
}
