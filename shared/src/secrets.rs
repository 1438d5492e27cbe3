//! Secrets, fetched once at cold start and held in types whose `Debug` prints nothing.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// A secret value; `Debug` and `Display` never show it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Every secret of the bundle, as one JSON document (one Secrets Manager secret in AWS).
#[derive(Clone, Deserialize)]
pub struct ConnectorSecrets {
    /// Meta app secrets; the first signs nothing, all are accepted, so a rotation can overlap.
    pub whatsapp_app_secrets: Vec<Secret>,
    /// The verify token typed into Meta's dashboard for the GET handshake.
    pub whatsapp_verify_token: Secret,
    /// Key of the HMAC that turns phone numbers and user ids into pseudonyms for logs and keys.
    pub pseudonym_key: Secret,
    /// Graph API access token (system user), used by the functions that send.
    #[serde(default)]
    pub whatsapp_access_token: Option<Secret>,
    /// Shared secret the DAM puts in its webhook header.
    #[serde(default)]
    pub dam_webhook_secret: Option<Secret>,
    /// Orange Logic OAuth2 client secret or static token.
    #[serde(default)]
    pub orange_logic_client_secret: Option<Secret>,
}

impl fmt::Debug for ConnectorSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectorSecrets(<redacted>)")
    }
}

/// Keys the document must have; each missing one is named.
const REQUIRED_KEYS: [&str; 3] = [
    "whatsapp_app_secrets",
    "whatsapp_verify_token",
    "pseudonym_key",
];

/// Shortest pseudonym key accepted: 32 bytes of entropy keep pseudonyms unguessable.
pub const MIN_PSEUDONYM_KEY_LEN: usize = 32;

impl ConnectorSecrets {
    /// Names every required key the document lacks (serde would stop at the first).
    fn check_required_keys(raw: &str) -> Result<(), SecretsError> {
        #[derive(Deserialize)]
        struct Keys(std::collections::HashMap<String, serde::de::IgnoredAny>);
        let Ok(Keys(keys)) = serde_json::from_str::<Keys>(raw) else {
            // Not an object: the typed parse below reports where.
            return Ok(());
        };
        let missing: Vec<&str> = REQUIRED_KEYS
            .into_iter()
            .filter(|key| !keys.contains_key(*key))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SecretsError::Missing(missing.join(", ")))
        }
    }

    /// Parses and checks the document; errors name the offending key, never a value.
    pub fn from_json(raw: &str) -> Result<Self, SecretsError> {
        Self::check_required_keys(raw)?;
        let deserializer = &mut serde_json::Deserializer::from_str(raw);
        let (secrets, unknown): (Self, _) = crate::config::tolerant(deserializer).map_err(|e| {
            // serde's own message can quote the offending value, which may be a secret: report
            // only where the problem is and what kind it is.
            let path = e.path().to_string();
            let inner = e.into_inner();
            SecretsError::Malformed {
                reason: format!(
                    "{:?} error at `{path}` (line {}, column {})",
                    inner.classify(),
                    inner.line(),
                    inner.column()
                ),
            }
        })?;
        crate::config::warn_unknown_keys("connector secrets", &unknown);
        if secrets.whatsapp_app_secrets.is_empty()
            || secrets
                .whatsapp_app_secrets
                .iter()
                .any(|s| s.expose().is_empty())
        {
            return Err(SecretsError::Invalid {
                key: "whatsapp_app_secrets",
                problem: "needs at least one non-empty secret",
            });
        }
        if secrets.whatsapp_verify_token.expose().is_empty() {
            return Err(SecretsError::Invalid {
                key: "whatsapp_verify_token",
                problem: "is empty",
            });
        }
        if secrets.pseudonym_key.expose().len() < MIN_PSEUDONYM_KEY_LEN {
            return Err(SecretsError::Invalid {
                key: "pseudonym_key",
                problem: "must be at least 32 characters",
            });
        }
        Ok(secrets)
    }
}

/// Where the secrets document lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsLocation {
    /// An AWS Secrets Manager secret (ARN or name), in AWS.
    SecretsManager(String),
    /// A JSON file, in the local stack.
    File(PathBuf),
}

impl SecretsLocation {
    /// Reads `CONNECTOR_SECRETS_ARN`, else `CONNECTOR_SECRETS_FILE`; reports both missing otherwise.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &mut crate::config::Env<F>) -> Self {
        if let Some(arn) = env.optional("CONNECTOR_SECRETS_ARN") {
            Self::SecretsManager(arn)
        } else if let Some(path) = env.optional("CONNECTOR_SECRETS_FILE") {
            Self::File(path.into())
        } else {
            env.required("CONNECTOR_SECRETS_ARN or CONNECTOR_SECRETS_FILE");
            Self::File(PathBuf::new())
        }
    }

    /// Fetches and validates the secrets; called once per cold start.
    pub async fn load(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> Result<ConnectorSecrets, SecretsError> {
        let raw = match self {
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
                    source: Box::new(source),
                })?
            }
            Self::SecretsManager(id) => aws_sdk_secretsmanager::Client::new(aws)
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| SecretsError::Read {
                    source: Box::new(e),
                })?
                .secret_string
                .ok_or(SecretsError::Invalid {
                    key: "SecretString",
                    problem: "the secret has no string value",
                })?,
        };
        ConnectorSecrets::from_json(&raw)
    }
}

/// Why the secrets could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The store could not be read.
    #[error("cannot read the connector secrets")]
    Read {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The document is not the expected JSON.
    #[error("the connector secrets are not valid JSON of the expected shape: {reason}")]
    Malformed { reason: String },
    /// Required keys are absent.
    #[error("the connector secrets lack {0}")]
    Missing(String),
    /// A key is present but unusable.
    #[error("connector secret `{key}` {problem}")]
    Invalid {
        key: &'static str,
        problem: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"whatsapp_app_secrets":["s1","s2"],"whatsapp_verify_token":"vt",
        "pseudonym_key":"0123456789abcdef0123456789abcdef"}"#;

    #[test]
    fn debug_output_never_contains_a_secret() {
        let secrets = ConnectorSecrets::from_json(GOOD).expect("valid");
        let printed = format!("{secrets:?} {:?}", secrets.whatsapp_app_secrets);
        assert!(
            !printed.contains("s1") && !printed.contains("0123456789"),
            "{printed}"
        );
    }

    #[test]
    fn a_short_pseudonym_key_is_refused_by_name() {
        let raw = GOOD.replace("0123456789abcdef0123456789abcdef", "short");
        let err = ConnectorSecrets::from_json(&raw).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "connector secret `pseudonym_key` must be at least 32 characters"
        );
    }

    #[test]
    fn an_empty_app_secret_list_is_refused() {
        let raw = GOOD.replace(r#"["s1","s2"]"#, "[]");
        assert!(matches!(
            ConnectorSecrets::from_json(&raw),
            Err(SecretsError::Invalid {
                key: "whatsapp_app_secrets",
                ..
            })
        ));
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_echoed() {
        let raw = GOOD.replace(r#"["s1","s2"]"#, r#""hunter2-app-secret""#);
        let err = ConnectorSecrets::from_json(&raw)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("whatsapp_app_secrets") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_tolerated_so_deploys_and_rollbacks_start() {
        let raw = GOOD.replace("\"vt\"", "\"vt\",\"added_later\":\"hunter2\"");
        let secrets = ConnectorSecrets::from_json(&raw).expect("tolerated");
        assert_eq!(secrets.whatsapp_verify_token.expose(), "vt");
    }

    #[test]
    fn every_missing_required_key_is_named() {
        let raw = r#"{"whatsapp_app_secrets":["s1"]}"#;
        let err = ConnectorSecrets::from_json(raw)
            .expect_err("missing")
            .to_string();
        assert_eq!(
            err,
            "the connector secrets lack whatsapp_verify_token, pseudonym_key"
        );
    }
}
