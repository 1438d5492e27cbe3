//! Plays Meta's side of the webhook: signs a notification with the app secret and POSTs it to the
//! callback URL, exactly as the Cloud API does.

use shared::secrets::Secret;
use shared::whatsapp::signature::AppSecretKeys;

/// Delivers signed notifications to a callback URL.
#[derive(Debug, Clone)]
pub struct MetaWebhookSender {
    client: reqwest::Client,
    keys: AppSecretKeys,
    callback_url: String,
}

impl MetaWebhookSender {
    /// A sender signing with `app_secret`.
    pub fn new(callback_url: impl Into<String>, app_secret: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            keys: AppSecretKeys::new(&[Secret::new(app_secret)]),
            callback_url: callback_url.into(),
        }
    }

    /// The `X-Hub-Signature-256` value for `body`.
    pub fn signature(&self, body: &[u8]) -> String {
        self.keys.sign(body).unwrap_or_default()
    }

    /// POSTs `body` signed; returns the HTTP status.
    pub async fn deliver(&self, body: &[u8]) -> anyhow::Result<u16> {
        let signature = self.signature(body);
        self.deliver_with(body, Some(&signature)).await
    }

    /// POSTs `body` with the given signature header (or none).
    pub async fn deliver_with(&self, body: &[u8], signature: Option<&str>) -> anyhow::Result<u16> {
        let mut request = self
            .client
            .post(&self.callback_url)
            .header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        Ok(request.body(body.to_vec()).send().await?.status().as_u16())
    }

    /// The GET handshake Meta makes when the callback URL is saved; returns status and body.
    pub async fn handshake(
        &self,
        verify_token: &str,
        challenge: &str,
    ) -> anyhow::Result<(u16, String)> {
        // Tokens and challenges here are URL-safe; Meta sends them unencoded too.
        let url = format!(
            "{}?hub.mode=subscribe&hub.challenge={challenge}&hub.verify_token={verify_token}",
            self.callback_url
        );
        let response = self.client.get(url).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }
}
