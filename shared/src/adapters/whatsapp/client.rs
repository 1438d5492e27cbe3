//! The Cloud API client: sends messages, marks them read, uploads media. The same client talks to
//! `graph.facebook.com` or to the local simulator; only [`GraphApiConfig::base_url`] differs.

use crate::error::Retryable;
use crate::secrets::Secret;
use crate::whatsapp::errors::{ApiError, GraphError};
use crate::whatsapp::messages::{OutgoingMessage, ValidationError, mark_read_body};
use serde::Deserialize;
use std::time::Duration;

/// Meta's Graph API host.
pub const GRAPH_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version the connector pins (both for sends and the webhook subscription).
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";
/// Sent on every request; Meta's media host refuses some requests without one.
pub const USER_AGENT: &str = concat!(
    "orange-logic-whatsapp-connector/",
    env!("CARGO_PKG_VERSION")
);

/// Where and as whom the client talks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphApiConfig {
    /// `https://graph.facebook.com`, or the simulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `v23.0`.
    pub version: String,
    /// The sending business phone number's id.
    pub phone_number_id: String,
    /// Whole-request timeout for JSON calls; media downloads use it per read instead.
    pub timeout: Duration,
}

impl GraphApiConfig {
    /// Settings for Meta's Graph API.
    pub fn meta(phone_number_id: impl Into<String>) -> Self {
        Self {
            base_url: GRAPH_BASE_URL.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            phone_number_id: phone_number_id.into(),
            timeout: Duration::from_secs(20),
        }
    }

    /// Reads `WHATSAPP_PHONE_NUMBER_ID` (required), `WHATSAPP_GRAPH_BASE_URL` and
    /// `WHATSAPP_GRAPH_VERSION` (optional; Meta's host and [`DEFAULT_GRAPH_VERSION`] otherwise).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &mut crate::config::Env<F>) -> Self {
        let mut config = Self::meta(env.required("WHATSAPP_PHONE_NUMBER_ID"));
        if let Some(base_url) = env.optional("WHATSAPP_GRAPH_BASE_URL") {
            config.base_url = base_url.trim_end_matches('/').to_owned();
        }
        if let Some(version) = env.optional("WHATSAPP_GRAPH_VERSION") {
            config.version = version;
        }
        config
    }

    /// `{base}/{version}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base_url, self.version)
    }
}

/// Why a send did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message breaks one of Meta's limits; nothing was sent.
    #[error("the message was not sent: it is invalid")]
    Invalid(#[source] ValidationError),
    /// Graph refused it or could not be reached.
    #[error("the Graph API did not accept the message")]
    Api(#[source] ApiError),
}

impl SendError {
    /// The API error, if the request reached Graph.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            Self::Invalid(_) => None,
        }
    }
}

impl Retryable for SendError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Invalid(_) => false,
            Self::Api(error) => error.is_retryable(),
        }
    }
}

/// What Graph answered to an accepted send (accepted, not delivered: failures may follow as statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The wamid that statuses and replies will carry.
    pub message_id: String,
    /// The canonical WhatsApp id of the recipient, when Meta returns one.
    pub wa_id: Option<String>,
    /// The business-scoped user id, for sends by BSUID.
    pub user_id: Option<String>,
    /// `accepted` / `held_for_quality_assessment` for paced templates.
    pub message_status: Option<String>,
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    contacts: Vec<ResponseContact>,
    messages: Vec<ResponseMessage>,
}

#[derive(Deserialize)]
struct ResponseContact {
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    id: String,
    #[serde(default)]
    message_status: Option<String>,
}

#[derive(Deserialize)]
struct SuccessResponse {
    success: bool,
}

#[derive(Deserialize)]
struct IdResponse {
    id: String,
}

/// A Cloud API client for one business phone number.
#[derive(Debug, Clone)]
pub struct WhatsAppClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: GraphApiConfig,
    pub(crate) token: Secret,
}

impl WhatsAppClient {
    /// A client with its own connection pool (rustls).
    pub fn new(config: GraphApiConfig, token: Secret) -> Result<Self, ApiError> {
        let tls = crate::crypto::tls_client_config().map_err(ApiError::TlsSetup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(config.timeout)
            .build()
            .map_err(|e| ApiError::Transport(e.without_url()))?;
        Ok(Self {
            http,
            config,
            token,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &GraphApiConfig {
        &self.config
    }

    /// Validates and sends a message from the configured business number.
    pub async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        self.send_from(&self.config.phone_number_id, message).await
    }

    /// Validates and sends a message from the business number `phone_number_id` (the connector has
    /// several, by purpose; the token of the system user covers them all).
    pub async fn send_from(
        &self,
        phone_number_id: &str,
        message: &OutgoingMessage,
    ) -> Result<SendReceipt, SendError> {
        let body = message.body().map_err(SendError::Invalid)?;
        let response: SendResponse = self
            .post_json(&format!("{phone_number_id}/messages"), &body)
            .await
            .map_err(SendError::Api)?;
        let first = response.messages.into_iter().next().ok_or_else(|| {
            SendError::Api(ApiError::UnexpectedBody {
                status: 200,
                source: serde::de::Error::custom("no message id in the response"),
            })
        })?;
        let contact = response.contacts.into_iter().next();
        Ok(SendReceipt {
            message_id: first.id,
            wa_id: contact.as_ref().and_then(|c| c.wa_id.clone()),
            user_id: contact.and_then(|c| c.user_id),
            message_status: first.message_status,
        })
    }

    /// Marks an inbound message (and the earlier ones of the chat) read; `typing` shows "typing…".
    pub async fn mark_read(&self, message_id: &str, typing: bool) -> Result<(), SendError> {
        let body = mark_read_body(message_id, typing).map_err(SendError::Invalid)?;
        let response: SuccessResponse = self
            .post_json(&self.messages_path(), &body)
            .await
            .map_err(SendError::Api)?;
        if response.success {
            Ok(())
        } else {
            Err(SendError::Api(ApiError::UnexpectedBody {
                status: 200,
                source: serde::de::Error::custom("success is false"),
            }))
        }
    }

    /// Uploads a file (`multipart/form-data`) and returns its media id (valid 30 days).
    pub async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, ApiError> {
        let boundary = boundary_for(&bytes);
        let body = multipart_body(&boundary, bytes, mime_type, filename);
        let url = self
            .config
            .url(&format!("{}/media", self.config.phone_number_id));
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .header(
                http::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url()))?;
        let parsed: IdResponse = read_json(response).await?;
        Ok(parsed.id)
    }

    fn messages_path(&self) -> String {
        format!("{}/messages", self.config.phone_number_id)
    }

    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ApiError> {
        let response = self
            .http
            .post(self.config.url(path))
            .bearer_auth(self.token.expose())
            .timeout(self.config.timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url()))?;
        read_json(response).await
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ApiError> {
        let response = self
            .http
            .get(self.config.url(path))
            .bearer_auth(self.token.expose())
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url()))?;
        read_json(response).await
    }
}

/// Turns a response into `T`, or into the Graph error it carries.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ApiError> {
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| ApiError::Transport(e.without_url()))?;
    error_for_status(status, &body)?;
    serde_json::from_slice(&body).map_err(|source| ApiError::UnexpectedBody { status, source })
}

/// `Err` for a non-2xx status: the Graph error when the body has one.
pub(crate) fn error_for_status(status: u16, body: &[u8]) -> Result<(), ApiError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(match GraphError::from_body(body) {
        Some(error) => ApiError::Graph {
            status,
            error: Box::new(error),
        },
        None => ApiError::Status { status },
    })
}

/// A multipart boundary that does not occur in `bytes` (a boundary only needs to be absent).
fn boundary_for(bytes: &[u8]) -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (0_u32..)
        .map(|n| format!("----wa-connector-{:08x}{n:08x}", seed))
        .find(|b| !bytes.windows(b.len()).any(|w| w == b.as_bytes()))
        .unwrap_or_default()
}

fn multipart_body(boundary: &str, bytes: Vec<u8>, mime_type: &str, filename: &str) -> Vec<u8> {
    // Quotes and line breaks would end the header early; Meta only needs the extension.
    let filename: String = filename
        .chars()
        .filter(|c| !matches!(c, '"' | '\r' | '\n' | '\\'))
        .collect();
    let mut body = Vec::with_capacity(bytes.len() + 512);
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field("messaging_product", "whatsapp");
    field("type", mime_type);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_base_version_and_path() {
        let mut config = GraphApiConfig::meta("109876543210987");
        assert_eq!(
            config.url("109876543210987/messages"),
            "https://graph.facebook.com/v23.0/109876543210987/messages"
        );
        config.base_url = "http://127.0.0.1:4010".into();
        assert_eq!(config.url("m1"), "http://127.0.0.1:4010/v23.0/m1");
    }

    #[test]
    fn config_from_env_defaults_to_meta_and_names_what_is_missing() {
        let vars = std::collections::HashMap::from([
            ("WHATSAPP_PHONE_NUMBER_ID", "P1"),
            ("WHATSAPP_GRAPH_BASE_URL", "http://127.0.0.1:9/"),
        ]);
        let mut env = crate::config::Env::new(|k: &str| vars.get(k).map(|v| (*v).to_owned()));
        let config = GraphApiConfig::from_env(&mut env);
        assert_eq!(config.base_url, "http://127.0.0.1:9");
        assert_eq!(config.version, DEFAULT_GRAPH_VERSION);
        assert_eq!(config.phone_number_id, "P1");

        let mut empty = crate::config::Env::new(|_: &str| None);
        let _ = GraphApiConfig::from_env(&mut empty);
        let err = empty.finish().expect_err("missing id");
        assert_eq!(err.missing(), ["WHATSAPP_PHONE_NUMBER_ID"]);
    }

    #[test]
    fn multipart_body_has_the_fields_meta_expects() {
        let body = multipart_body("B", b"%PDF".to_vec(), "application/pdf", "a\"b.pdf");
        let text = String::from_utf8(body).expect("ascii");
        assert!(text.starts_with(
            "--B\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
        ));
        assert!(text.contains("name=\"file\"; filename=\"ab.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--B--\r\n"));
    }

    #[test]
    fn error_bodies_become_graph_errors_and_others_status_errors() {
        let graph = error_for_status(
            400,
            br#"{"error":{"message":"(#131056) x","type":"OAuthException","code":131056}}"#,
        );
        assert!(
            matches!(graph, Err(ApiError::Graph { status: 400, ref error }) if error.code == 131_056)
        );
        assert!(matches!(
            error_for_status(502, b"Bad Gateway"),
            Err(ApiError::Status { status: 502 })
        ));
        assert!(error_for_status(200, b"").is_ok());
    }
}
