//! The template management calls of the Graph API: list a WABA's templates (following pages)
//! and create one. Errors keep Meta's code and details; the token never leaves the header.

use serde::Deserialize;
use serde_json::Value;
use shared::secrets::Secret;
use shared::whatsapp::errors::{ApiError, GraphError};
use std::time::Duration;

/// Where the Graph API is and who calls it.
#[derive(Debug, Clone)]
pub struct GraphTarget {
    /// `https://graph.facebook.com` or the simulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `v23.0`.
    pub version: String,
    /// The WhatsApp Business Account id.
    pub waba_id: String,
    /// A system-user token with `whatsapp_business_management`.
    pub token: Secret,
}

/// A template as the WABA lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WabaTemplate {
    /// Meta's id.
    #[serde(default)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Locale.
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, ...
    pub status: String,
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Why the review refused it (`INVALID_FORMAT`, `PROMOTIONAL`, `NONE`).
    #[serde(default)]
    pub rejected_reason: Option<String>,
    /// The components as reviewed, when listed.
    #[serde(default)]
    pub components: Option<Vec<Value>>,
}

/// The answer to a create request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Created {
    /// Meta's id of the new template.
    pub id: String,
    /// Usually `PENDING`.
    pub status: String,
    /// The category Meta gave it.
    #[serde(default)]
    pub category: String,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<WabaTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

/// Calls the template endpoints of one WABA.
#[derive(Debug, Clone)]
pub struct TemplateApi {
    http: reqwest::Client,
    target: GraphTarget,
    page_size: usize,
}

/// Fields asked for when listing (Meta's default fields leave out the rejection reason).
const LIST_FIELDS: &str = "id,name,language,status,category,rejected_reason,components";

impl TemplateApi {
    /// A client with a 30-second timeout per call.
    pub fn new(target: GraphTarget) -> Result<Self, ApiError> {
        let tls = shared::crypto::tls_client_config().map_err(ApiError::TlsSetup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(ApiError::Transport)?;
        Ok(Self {
            http,
            target,
            page_size: 100,
        })
    }

    /// Templates asked for per page (100 unless changed; tests use small pages).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    fn templates_url(&self) -> String {
        format!(
            "{}/{}/{}/message_templates",
            self.target.base_url.trim_end_matches('/'),
            self.target.version,
            self.target.waba_id
        )
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, ApiError> {
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(ApiError::Transport)?;
        if !(200..300).contains(&status) {
            return Err(match GraphError::from_body(&body) {
                Some(error) => ApiError::Graph {
                    status,
                    error: Box::new(error),
                },
                None => ApiError::Status { status },
            });
        }
        serde_json::from_slice(&body).map_err(|source| ApiError::UnexpectedBody { status, source })
    }

    /// Every template of the WABA, all pages.
    pub async fn list(&self) -> Result<Vec<WabaTemplate>, ApiError> {
        let mut all = Vec::new();
        let mut request = self.http.get(format!(
            "{}?fields={LIST_FIELDS}&limit=100",
            self.templates_url()
        ));
        loop {
            let response = request
                .bearer_auth(self.target.token.expose())
                .send()
                .await
                .map_err(ApiError::Transport)?;
            let page: Page = Self::answer(response).await?;
            all.extend(page.data);
            match page.paging.and_then(|p| p.next) {
                Some(next) => request = self.http.get(next),
                None => return Ok(all),
            }
        }
    }

    /// Submits one template for review.
    pub async fn create(
        &self,
        template: &shared::templates::Template,
    ) -> Result<Created, ApiError> {
        let response = self
            .http
            .post(self.templates_url())
            .bearer_auth(self.target.token.expose())
            .json(&template.to_request())
            .send()
            .await
            .map_err(ApiError::Transport)?;
        Self::answer(response).await
    }
}
