//! Secrets and the connector configuration as deployed: read from Secrets Manager and SSM (on moto).

use e2e::TestEnv;
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::secrets::{SecretsError, SecretsLocation};

#[tokio::test]
async fn secrets_are_read_once_from_secrets_manager() {
    let env = TestEnv::start().await;
    let client = aws_sdk_secretsmanager::Client::new(&env.stack.aws);
    let name = format!("{}-connector", env.stack.resources.stack_name);
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string(e2e::event_file("../local/secrets.json"))
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn");
    let secrets = SecretsLocation::SecretsManager(arn)
        .load(&env.stack.aws)
        .await
        .expect("secrets load");
    assert_eq!(secrets.whatsapp_verify_token.expose(), e2e::VERIFY_TOKEN);
    assert!(!format!("{secrets:?}").contains(e2e::APP_SECRET));
}

#[tokio::test]
async fn a_missing_secret_fails_the_cold_start_with_a_clear_error() {
    let env = TestEnv::start().await;
    let missing = SecretsLocation::SecretsManager(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope".into(),
    );
    let err = missing
        .load(&env.stack.aws)
        .await
        .expect_err("no such secret");
    assert!(matches!(err, SecretsError::Read { .. }));
    assert_eq!(err.to_string(), "cannot read the connector secrets");
}

#[tokio::test]
async fn the_connector_configuration_is_read_from_ssm_and_validated() {
    let env = TestEnv::start().await;
    let ssm = aws_sdk_ssm::Client::new(&env.stack.aws);
    let name = format!("/{}/connector", env.stack.resources.stack_name);
    let document =
        std::fs::read_to_string(local::moto::workspace_root().join("local/connector.yaml"))
            .expect("sample");
    ssm.put_parameter()
        .name(&name)
        .value(&document)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("put parameter");
    let config = ConnectorConfigLocation::SsmParameter(name.clone())
        .load(&env.stack.aws)
        .await
        .expect("config");
    assert_eq!(config.alerts.expiry_windows_days, [30, 7, 1]);

    let broken = document.replace(
        "expiry_windows_days: [30, 7, 1]",
        "expiry_windows_days: [30, 0]",
    );
    ssm.put_parameter()
        .name(&name)
        .value(broken)
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("overwrite");
    let err = ConnectorConfigLocation::SsmParameter(name)
        .load(&env.stack.aws)
        .await
        .expect_err("invalid");
    assert!(matches!(err, ConnectorConfigError::Invalid(_)));
    assert!(
        err.to_string().contains("alerts.expiry_windows_days"),
        "{err}"
    );
}
