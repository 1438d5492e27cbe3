//! The Orange Logic settings a flow function reads at cold start (`ORANGE_LOGIC_BASE_URL`,
//! `ORANGE_LOGIC_AUTH`, `ORANGE_LOGIC_CLIENT_ID`) and the client they make with the secrets.

use super::{Auth, OrangeLogicClient, OrangeLogicError, Settings, TOKEN_PATH};
use crate::config::Env;
use crate::connector_config::ConnectorConfig;
use crate::secrets::ConnectorSecrets;
use std::sync::Arc;

/// Where and how to reach the instance.
#[derive(Debug, Clone)]
pub struct OrangeLogicLocation {
    /// `https://customer.orangelogic.com`.
    pub base_url: String,
    /// `true`: the secret is a non-expiring bearer token; `false`: OAuth2 client credentials.
    pub bearer: bool,
    /// OAuth client id (client credentials only).
    pub client_id: String,
}

impl OrangeLogicLocation {
    /// Reads the variables, recording what is missing or invalid in `env`.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Self {
        let base_url = env.required("ORANGE_LOGIC_BASE_URL");
        let bearer = match env.optional("ORANGE_LOGIC_AUTH").as_deref() {
            None | Some("client_credentials") => false,
            Some("bearer") => true,
            Some(other) => {
                env.invalid(
                    "ORANGE_LOGIC_AUTH",
                    format!("{other:?} is neither client_credentials nor bearer"),
                );
                false
            }
        };
        let client_id = if bearer {
            String::new()
        } else {
            env.required("ORANGE_LOGIC_CLIENT_ID")
        };
        Self {
            base_url,
            bearer,
            client_id,
        }
    }
}

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No secret.
    #[error("the connector secrets hold no `orange_logic_client_secret`")]
    NoSecret,
    /// The HTTP client could not be built.
    #[error("cannot build the Orange Logic client")]
    Client(#[from] OrangeLogicError),
}

/// The client's settings: where, as whom, and the instance's field map and dates; a flow adjusts
/// them (e.g. muting its own writes' webhooks) before making the client.
pub fn settings(
    location: &OrangeLogicLocation,
    secrets: &ConnectorSecrets,
    connector: &ConnectorConfig,
) -> Result<Settings, ConnectError> {
    let secret = secrets
        .orange_logic_client_secret
        .clone()
        .filter(|s| !s.expose().is_empty())
        .ok_or(ConnectError::NoSecret)?;
    let auth = if location.bearer {
        Auth::StaticBearer(secret)
    } else {
        Auth::ClientCredentials {
            token_path: TOKEN_PATH.into(),
            client_id: location.client_id.clone(),
            client_secret: secret,
        }
    };
    Ok(Settings::new(&location.base_url, auth).with_dam(&connector.dam))
}

/// The client, once per cold start.
pub fn client(
    location: &OrangeLogicLocation,
    secrets: &ConnectorSecrets,
    connector: &ConnectorConfig,
) -> Result<Arc<OrangeLogicClient>, ConnectError> {
    Ok(Arc::new(OrangeLogicClient::new(settings(
        location, secrets, connector,
    )?)?))
}
