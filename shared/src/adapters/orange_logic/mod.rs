//! Orange Logic (OrangeDAM / Cortex) client: authentication, Search v4.0 paging, DataTable v2.2
//! read, update and folder calls, UploadNewMedia v3.0, share links, deleted objects. Facts and
//! guesses behind each call are in `docs/orange-logic.md`; everything an instance may spell
//! differently is a setting.
//!
//! Every answer goes through [`answer::read`]: failures inside HTTP 200, XML, HTML login pages and
//! redirects are recognised in one place. Throttling and 5xx are retried inside the call (honouring
//! `Retry-After`, with jittered backoff) only while the wait fits the invocation's remaining time
//! ([`crate::lambda::deadline`]); otherwise the error goes back to the caller, retryable, so the work
//! returns to its queue. No URL, query string or value sent ever reaches an error text or a log line.

pub mod answer;
pub mod connect;
pub mod error;
pub mod expiry;
mod folders;
pub mod source;

pub use answer::retry_after;
pub use error::{OrangeLogicError, SearchCut, SessionSign};

use crate::connector_config::{DamSettings, DataTableRoute, DataTableSettings, FolderSettings};
use crate::lambda::deadline;
use crate::secrets::Secret;
use answer::Outcome;
use bytes::Bytes;
use futures::{Stream, TryStream, TryStreamExt as _};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One record (asset or search item): field name → value as Orange Logic sent it.
pub type Record = Map<String, Value>;

/// The Search API endpoint.
const SEARCH_PATH: &str = "/API/Search/v4.0/Search";

/// The deleted-objects endpoint (path from working code; parameters unconfirmed).
const DELETED_OBJECTS_PATH: &str = "/webapi/objectmanagement/deletion/getdeletedobjects_45C_v1";

/// Search v4.0 serves at most this many items per page (third-party reports; kept safe).
pub const MAX_PER_PAGE: u8 = 100;

/// The DataTable documentation's GET URL limit: longer calls go as POST form bodies.
pub const DOCUMENTED_GET_URL_LIMIT: usize = 260;

/// Records whose write route is remembered per cold start before the memory is cleared.
const ROUTE_CACHE_LIMIT: usize = 10_000;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// OAuth2 client credentials, exchanged at `token_path` for a bearer token, renewed on 401.
    ClientCredentials {
        /// Path of the token endpoint on the instance.
        token_path: String,
        /// The OAuth client id.
        client_id: String,
        /// The OAuth client secret.
        client_secret: Secret,
    },
    /// A non-expiring bearer token stored on the integration account.
    StaticBearer(Secret),
}

/// The documented client-credentials token endpoint.
pub const TOKEN_PATH: &str = "/webapi/security/clientcredentialsauthentication/authenticate_46H_v1";

/// Retries inside one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one call, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling (doubles per attempt; the wait is uniformly jittered below it).
    pub base_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
    /// Longest `Retry-After` waited for inside a call; a longer one hands the work back at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Everything the client needs to reach one instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://customer.orangelogic.com`, no trailing slash.
    pub base_url: String,
    /// Authentication.
    pub auth: Auth,
    /// GET URLs longer than this go as POST form bodies (the documented DataTable limit, 260).
    pub max_get_url_len: usize,
    /// DataTable resources and record keys for reads and updates, per subtype.
    pub datatable: DataTableSettings,
    /// The field holding the subtype the routes are chosen by.
    pub subtype_field: String,
    /// Folder path resolution.
    pub folders: FolderSettings,
    /// Most pages one search reads.
    pub page_cap: u32,
    /// Multipart part name of the file in UploadNewMedia (`InputStream` or `UploadStream`).
    pub upload_part_name: String,
    /// Timeout of ordinary calls (also the worst case a retry must fit before the deadline).
    pub timeout: Duration,
    /// Timeout of uploads.
    pub upload_timeout: Duration,
    /// Webhook topics muted on the connector's own calls (`X-Mute-WebHook-Topics`, e.g. `*`), so its
    /// writes do not come back as webhooks; needs the "Mute webhooks per API call" security function.
    pub mute_webhook_topics: Option<String>,
    /// Largest file sent with UploadNewMedia (Orange Logic documents 1.5 GB for single uploads;
    /// larger files need the chunked multi-part API, not implemented).
    pub max_upload_bytes: u64,
    /// Retries inside one call.
    pub retry: RetryPolicy,
}

impl Settings {
    /// Defaults for `base_url` and `auth`.
    pub fn new(base_url: impl Into<String>, auth: Auth) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            auth,
            max_get_url_len: DOCUMENTED_GET_URL_LIMIT,
            datatable: DataTableSettings::default(),
            subtype_field: "CoreField.DocSubType".into(),
            folders: FolderSettings::default(),
            page_cap: 200,
            upload_part_name: "InputStream".into(),
            timeout: Duration::from_secs(20),
            upload_timeout: Duration::from_secs(900),
            max_upload_bytes: 1_500_000_000,
            mute_webhook_topics: None,
            retry: RetryPolicy::default(),
        }
    }

    /// Takes the instance's routes, folders and paging from the connector configuration.
    #[must_use]
    pub fn with_dam(mut self, dam: &DamSettings) -> Self {
        self.datatable = dam.datatable.clone();
        self.subtype_field.clone_from(&dam.doc_subtype_field);
        self.folders = dam.folders.clone();
        self.page_cap = dam.search.page_cap.max(1);
        self
    }
}

/// A search: `query` in Orange Logic's criterion syntax, the fields to return, the page size.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// E.g. `CoreField.EditDate>:2026-11-26T10.00.00`.
    pub query: String,
    /// Fields to return.
    pub fields: Vec<String>,
    /// Items per page, capped at [`MAX_PER_PAGE`].
    pub per_page: u8,
    /// Optional `sort`.
    pub sort: Option<String>,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// 1-based page number.
    pub number: u32,
    /// `GlobalInfo.TotalCount`, when the account may see it.
    pub total: Option<u64>,
    /// The items.
    pub items: Vec<Record>,
}

/// A DataTable field operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `:=` replace.
    Set,
    /// `+=` add existing authority values.
    Add,
    /// `++=` add values, creating new ones.
    AddCreating,
    /// `--=` remove values (empty value clears).
    Remove,
}

impl FieldOp {
    fn suffix(self) -> &'static str {
        match self {
            Self::Set => ":",
            Self::Add => "+",
            Self::AddCreating => "++",
            Self::Remove => "--",
        }
    }
}

/// One assignment of a DataTable update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUpdate {
    /// Field API name.
    pub field: String,
    /// Operator.
    pub op: FieldOp,
    /// Values; several are joined with `|`.
    pub values: Vec<String>,
}

impl FieldUpdate {
    /// `field := value`.
    pub fn set(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            op: FieldOp::Set,
            values: vec![value.into()],
        }
    }
}

/// A new asset to upload.
#[derive(Debug, Clone)]
pub struct NewMedia {
    /// Folder RecordID (resolve a configured path with [`OrangeLogicClient::folder_record_id`]).
    pub folder: String,
    /// File name with extension.
    pub file_name: String,
    /// Metadata applied at upload (field → value); sent in the multipart body, never in the URL.
    pub metadata: Vec<(String, String)>,
    /// `UploadMode`, e.g. `ProcessFullyInBackground`.
    pub upload_mode: String,
}

/// An uploaded asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    /// Its unique (system) identifier.
    pub identifier: String,
    /// Its RecordID, when the instance returns it.
    pub record_id: Option<String>,
}

/// A share / download link; generate one when sending, never store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    /// The URL.
    pub url: String,
    /// When it stops working, as the DAM reports it.
    pub expires_at: Option<String>,
}

/// Where a record's writes go, learnt by reading it once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WriteRoute {
    /// Read route of its subtype.
    read: DataTableRoute,
    /// Update route of its subtype.
    update: DataTableRoute,
    /// Value of the update key for this record.
    key_value: String,
}

/// How many times [`OrangeLogicClient::append_to_field`] tries before it gives up.
pub const APPEND_ATTEMPTS: u32 = 5;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The line was written; `attempts` > 1 when a concurrent write replaced it first.
    Written {
        /// Writes it took.
        attempts: u32,
    },
    /// The log already held the line (a retried append).
    AlreadyThere,
}

fn has_line(log: &str, line: &str) -> bool {
    log.lines().any(|l| l == line)
}

/// The client. Cheap to share; the bearer token is cached and renewed once per call on a 401 or a
/// lost session; folder ids and write routes are cached per cold start.
#[derive(Debug)]
pub struct OrangeLogicClient {
    http: reqwest::Client,
    settings: Settings,
    token: tokio::sync::Mutex<Option<Secret>>,
    routes: std::sync::Mutex<HashMap<String, WriteRoute>>,
    folders: std::sync::Mutex<HashMap<String, String>>,
}

/// One legacy API call.
struct Call<'a> {
    path: &'a str,
    params: &'a [(String, String)],
    /// Writes always go as POST (never a value in a URL) and succeed only when a record was affected.
    write: bool,
}

impl OrangeLogicClient {
    /// A client for one instance.
    pub fn new(settings: Settings) -> Result<Self, OrangeLogicError> {
        let tls = crate::crypto::tls_client_config().map_err(OrangeLogicError::TlsSetup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            // A redirect from an API call goes to a login page: it is read as "session gone", and
            // the bearer token is never sent to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(OrangeLogicError::transport)?;
        Ok(Self {
            http,
            settings,
            token: tokio::sync::Mutex::new(None),
            routes: std::sync::Mutex::default(),
            folders: std::sync::Mutex::default(),
        })
    }

    fn muted(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.mute_webhook_topics {
            Some(topics) => request.header("X-Mute-WebHook-Topics", topics),
            None => request,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The timeout of the next request: the setting, or less when the invocation ends sooner.
    fn request_timeout(&self, setting: Duration) -> Duration {
        deadline::remaining().map_or(setting, |left| {
            setting.min(left).max(Duration::from_millis(1))
        })
    }

    async fn bearer(&self, stale: Option<&Secret>) -> Result<Secret, OrangeLogicError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Some(token) != stale
        {
            return Ok(token.clone());
        }
        let token = match &self.settings.auth {
            Auth::StaticBearer(token) => {
                if stale.is_some() {
                    return Err(OrangeLogicError::Unauthorized);
                }
                token.clone()
            }
            Auth::ClientCredentials {
                token_path,
                client_id,
                client_secret,
            } => {
                self.fetch_token(token_path, client_id, client_secret)
                    .await?
            }
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    #[tracing::instrument(name = "orange_logic_authenticate", skip_all)]
    async fn fetch_token(
        &self,
        path: &str,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<Secret, OrangeLogicError> {
        let body = encode_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
        ]);
        let response = self
            .http
            .post(format!("{}{path}", self.settings.base_url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .timeout(self.request_timeout(self.settings.timeout))
            .body(body)
            .send()
            .await
            .map_err(OrangeLogicError::transport)?;
        let status = response.status();
        if !status.is_success() {
            let error = OrangeLogicError::AuthRejected {
                status: status.as_u16(),
            };
            return Err(if error.is_auth_failure() {
                auth_alarm(error)
            } else {
                error
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(OrangeLogicError::transport)?;
        let json: Value = serde_json::from_slice(&bytes)
            .map_err(|e| OrangeLogicError::Decode(format!("token answer: {e}")))?;
        // Sources disagree on the spelling; both are seen in working clients.
        ["access_token", "accessToken"]
            .iter()
            .find_map(|key| json.get(key).and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| {
                OrangeLogicError::Decode("token answer has no access_token or accessToken".into())
            })
    }

    /// A fresh token after `sign` said the current one is gone; a second loss in the same call is
    /// an authentication failure (retryable, with the alarm).
    async fn renew(&self, stale: &Secret, sign: SessionSign) -> Result<Secret, OrangeLogicError> {
        tracing::info!(sign = %sign, "Orange Logic session gone; renewing the token once");
        match self.bearer(Some(stale)).await {
            Ok(token) => Ok(token),
            Err(OrangeLogicError::Unauthorized) => Err(auth_alarm(session_error(sign))),
            Err(error) => Err(error),
        }
    }

    /// Waits before the next attempt of a call that failed with `error`, if another attempt is
    /// allowed and fits the invocation's remaining time (`worst_case` is the next attempt's
    /// timeout); otherwise returns the error for the caller (and the queue) to handle.
    async fn pause_before_retry(
        &self,
        error: OrangeLogicError,
        attempt: u32,
        worst_case: Duration,
        transport_retryable: bool,
    ) -> Result<(), OrangeLogicError> {
        let worth_it = match &error {
            OrangeLogicError::RateLimited { .. } | OrangeLogicError::Server { .. } => true,
            OrangeLogicError::Transport(_) => transport_retryable,
            _ => false,
        };
        let policy = &self.settings.retry;
        if !worth_it || attempt >= policy.max_attempts {
            return Err(error);
        }
        let jitter = random_below(policy.base_backoff);
        let wait = match error.retry_after() {
            Some(asked) if asked > policy.max_retry_after => {
                tracing::info!(
                    retry_after_s = asked.as_secs(),
                    "Orange Logic asked to wait longer than a call may; handing the work back"
                );
                return Err(error);
            }
            // After the time the DAM named, never before it.
            Some(asked) => asked + jitter,
            None => random_below(
                policy
                    .base_backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(policy.max_backoff),
            ),
        };
        if !deadline::fits(wait, worst_case) {
            tracing::info!(
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "the next attempt does not fit the invocation's remaining time; handing the work back"
            );
            return Err(OrangeLogicError::OutOfTime(Box::new(error)));
        }
        tracing::info!(
            attempt,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "Orange Logic call failed; retrying"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Calls a legacy `/API/...` (or `/webapi`) endpoint with `params` (plus `format=json`), GET
    /// when the URL is short and POST form otherwise; on 403 to a GET retries once as POST, on a
    /// lost session renews the token once, on throttling and 5xx retries within the deadline.
    pub async fn call(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, OrangeLogicError> {
        self.exchange(Call {
            path,
            params,
            write: false,
        })
        .await
    }

    /// A write (DataTable `:Update`, `:Create`): always a POST form, successful only when the
    /// answer says a record was affected.
    pub async fn write(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, OrangeLogicError> {
        self.exchange(Call {
            path,
            params,
            write: true,
        })
        .await
    }

    async fn exchange(&self, call: Call<'_>) -> Result<Value, OrangeLogicError> {
        let form = encode_pairs(
            call.params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([("format", "json")]),
        );
        let url = format!("{}{}", self.settings.base_url, call.path);
        let mut post = call.write || url.len() + 1 + form.len() > self.settings.max_get_url_len;
        let mut token = self.bearer(None).await?;
        let mut renewed = false;
        let mut attempt = 1;
        loop {
            let request = if post {
                // `format` in the URL too: some front ends only read it there.
                self.http
                    .post(format!("{url}?format=json"))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.clone())
            } else {
                self.http.get(format!("{url}?{form}"))
            };
            let request = self
                .muted(request)
                .timeout(self.request_timeout(self.settings.timeout))
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
            match send(request).await {
                Outcome::Json(json) => {
                    if call.write {
                        answer::records_affected(&json)?;
                    }
                    return Ok(json);
                }
                Outcome::Renew(sign) if !renewed => {
                    renewed = true;
                    token = self.renew(&token, sign).await?;
                }
                Outcome::Renew(sign) => return Err(auth_alarm(session_error(sign))),
                Outcome::Failed(OrangeLogicError::Forbidden) if !post => {
                    tracing::info!(
                        url_len = url.len() + 1 + form.len(),
                        "Orange Logic answered 403 to a GET; retrying as a POST form"
                    );
                    post = true;
                }
                Outcome::Failed(OrangeLogicError::Forbidden) => {
                    return Err(auth_alarm(OrangeLogicError::Forbidden));
                }
                Outcome::Failed(error) => {
                    self.pause_before_retry(error, attempt, self.settings.timeout, true)
                        .await?;
                    attempt += 1;
                }
            }
        }
    }

    /// Search v4.0 as a stream of pages. Paging goes on while the last page was full, `NextPage`
    /// names a next one or `TotalCount` says more are left, and stops at an empty page, whether or
    /// not `GlobalInfo` is there (accounts without "search on all documents" get none). Past
    /// `page_cap` pages, or when another page does not fit the invocation's remaining time, the
    /// stream ends with [`OrangeLogicError::SearchCut`] after the pages already read.
    pub fn search(
        &self,
        query: SearchQuery,
    ) -> impl Stream<Item = Result<SearchPage, OrangeLogicError>> + Send + '_ {
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let mut params = vec![
            ("query".to_owned(), query.query.clone()),
            ("countperpage".to_owned(), per_page.to_string()),
            ("pagenumber".to_owned(), "1".to_owned()),
        ];
        if !query.fields.is_empty() {
            params.push(("fields".to_owned(), query.fields.join(",")));
        }
        if let Some(sort) = &query.sort {
            params.push(("sort".to_owned(), sort.clone()));
        }
        let first = Some((1_u32, SEARCH_PATH.to_owned(), params, 0_u64));
        futures::stream::try_unfold(first, move |next| async move {
            let Some((number, path, params, read_before)) = next else {
                return Ok(None);
            };
            let pages_read = number - 1;
            if pages_read >= self.settings.page_cap {
                return Err(OrangeLogicError::SearchCut {
                    reason: SearchCut::PageCap,
                    pages: pages_read,
                });
            }
            if pages_read > 0 && !deadline::fits(Duration::ZERO, self.settings.timeout) {
                return Err(OrangeLogicError::SearchCut {
                    reason: SearchCut::OutOfTime,
                    pages: pages_read,
                });
            }
            let json = self.call(&path, &params).await?;
            let response = json.get("APIResponse").ok_or_else(|| {
                OrangeLogicError::Decode("search answer has no APIResponse".into())
            })?;
            let items: Vec<Record> = match response.get("Items") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_object().cloned())
                    .collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    return Err(OrangeLogicError::Decode(
                        "search Items is not a list".into(),
                    ));
                }
            };
            let info = response.get("GlobalInfo");
            let total = info
                .and_then(|i| i.get("TotalCount"))
                .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()));
            let href = info
                .and_then(|i| i.get("NextPage"))
                .and_then(|n| n.get("href"))
                .and_then(Value::as_str);
            let read = read_before + items.len() as u64;
            let more = !items.is_empty()
                && (href.is_some()
                    || total.map_or(items.len() >= usize::from(per_page), |t| read < t));
            let following = more.then(|| {
                let (path, params) = self.next_page(href, &path, &params, number + 1);
                (number + 1, path, params, read)
            });
            Ok(Some((
                SearchPage {
                    number,
                    total,
                    items,
                },
                following,
            )))
        })
    }

    /// The request for the next page: `NextPage.href` when it points at this instance (it may
    /// carry a continuation token), else the same search with the next page number.
    fn next_page(
        &self,
        href: Option<&str>,
        path: &str,
        params: &[(String, String)],
        number: u32,
    ) -> (String, Vec<(String, String)>) {
        let local = href.and_then(|href| {
            href.strip_prefix(self.settings.base_url.as_str())
                .or_else(|| href.starts_with('/').then_some(href))
        });
        if let Some((next_path, query)) = local.and_then(|l| l.split_once('?'))
            && next_path.starts_with('/')
        {
            let params = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("format") && !k.eq_ignore_ascii_case("token")
                })
                .collect();
            return (next_path.to_owned(), params);
        }
        let mut params: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("pagenumber"))
            .cloned()
            .collect();
        params.push(("pagenumber".to_owned(), number.to_string()));
        (path.to_owned(), params)
    }

    /// DataTable v2.2 `:Read` of one record by `key_field` (e.g. `RecordID`, `CoreField.Identifier`)
    /// on the default read resource; `None` when the DAM has no such record.
    pub async fn read_record(
        &self,
        key_field: &str,
        key: &str,
    ) -> Result<Option<Record>, OrangeLogicError> {
        let route = self.settings.datatable.read.clone();
        self.read_on(&route.resource, key_field, key).await
    }

    async fn read_on(
        &self,
        resource: &str,
        key_field: &str,
        key: &str,
    ) -> Result<Option<Record>, OrangeLogicError> {
        let path = format!("/API/DataTable/v2.2/{resource}:Read");
        let json = match self
            .call(&path, &[(key_field.to_owned(), key.to_owned())])
            .await
        {
            Err(OrangeLogicError::NotFound | OrangeLogicError::RecordNotFound) => return Ok(None),
            other => other?,
        };
        match json.get("Response") {
            Some(Value::Array(records)) => Ok(records.first().and_then(Value::as_object).cloned()),
            Some(Value::Object(record)) => Ok(Some(record.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(OrangeLogicError::Decode(
                "DataTable Response is neither a list nor a record".into(),
            )),
        }
    }

    /// Reads an asset by RecordID on its subtype's read route (once the subtype is known), else on
    /// the default read route; `None` when it no longer exists.
    pub async fn read_asset(&self, record_id: &str) -> Result<Option<Record>, OrangeLogicError> {
        let known = self.cached_route(record_id);
        match known {
            Some(route) => {
                let key = if route.read.key.eq_ignore_ascii_case("RecordID") {
                    record_id.to_owned()
                } else if route.read.key.eq_ignore_ascii_case(&route.update.key) {
                    route.key_value.clone()
                } else {
                    return self.read_record("RecordID", record_id).await;
                };
                self.read_on(&route.read.resource, &route.read.key, &key)
                    .await
            }
            None => {
                let record = self.read_record("RecordID", record_id).await?;
                if let Some(record) = &record {
                    // Learnt for free: later writes need no extra read.
                    let _ = self.remember_route(record_id, record);
                }
                Ok(record)
            }
        }
    }

    fn cached_route(&self, record_id: &str) -> Option<WriteRoute> {
        self.routes
            .lock()
            .ok()
            .and_then(|routes| routes.get(record_id).cloned())
    }

    /// Works out (and caches) where `record`'s writes go, from its subtype.
    fn remember_route(
        &self,
        record_id: &str,
        record: &Record,
    ) -> Result<WriteRoute, OrangeLogicError> {
        let datatable = &self.settings.datatable;
        let subtype = field_text(record, &self.settings.subtype_field);
        let overrides = subtype.as_deref().and_then(|subtype| {
            datatable
                .subtypes
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(subtype.trim()))
                .map(|(_, routes)| routes)
        });
        let read = overrides
            .and_then(|o| o.read.clone())
            .unwrap_or_else(|| datatable.read.clone());
        let update = overrides
            .and_then(|o| o.update.clone())
            .unwrap_or_else(|| datatable.update.clone());
        let key_value = if update.key.eq_ignore_ascii_case("RecordID") {
            record_id.to_owned()
        } else {
            key_value(record, &update.key).ok_or_else(|| {
                OrangeLogicError::Configuration(format!(
                    "records read from {} have no `{}`; set dam.datatable.update.key",
                    datatable.read.resource, update.key
                ))
            })?
        };
        let route = WriteRoute {
            read,
            update,
            key_value,
        };
        if let Ok(mut routes) = self.routes.lock() {
            if routes.len() >= ROUTE_CACHE_LIMIT {
                routes.clear();
            }
            routes.insert(record_id.to_owned(), route.clone());
        }
        Ok(route)
    }

    async fn write_route(&self, record_id: &str) -> Result<WriteRoute, OrangeLogicError> {
        if let Some(route) = self.cached_route(record_id) {
            return Ok(route);
        }
        let datatable = &self.settings.datatable;
        if datatable.update.key.eq_ignore_ascii_case("RecordID") && datatable.subtypes.is_empty() {
            return Ok(WriteRoute {
                read: datatable.read.clone(),
                update: datatable.update.clone(),
                key_value: record_id.to_owned(),
            });
        }
        let record = self
            .read_record("RecordID", record_id)
            .await?
            .ok_or(OrangeLogicError::RecordNotFound)?;
        self.remember_route(record_id, &record)
    }

    /// DataTable v2.2 `:Update` of the record with this RecordID, on its subtype's update route
    /// and key (learnt by reading it once). A POST form; successful only when the DAM says the
    /// record was affected.
    pub async fn update_record(
        &self,
        record_id: &str,
        updates: &[FieldUpdate],
    ) -> Result<(), OrangeLogicError> {
        let route = self.write_route(record_id).await?;
        let path = format!("/API/DataTable/v2.2/{}:Update", route.update.resource);
        let mut params = vec![(route.update.key.clone(), route.key_value.clone())];
        params.extend(
            updates
                .iter()
                .map(|u| (format!("{}{}", u.field, u.op.suffix()), u.values.join("|"))),
        );
        self.write(&path, &params).await.map(|_| ())
    }

    /// Moves an asset into a folder (its physical parent), by the folder's RecordID.
    pub async fn move_to_folder(
        &self,
        record_id: &str,
        folder_record_id: &str,
    ) -> Result<(), OrangeLogicError> {
        let sub_call = format!(
            "[/API/DataTable/V2.2/{}:Read?RecordID={folder_record_id}]",
            self.settings.folders.resource
        );
        self.update_record(
            record_id,
            &[FieldUpdate::set("CoreField.Parent-folder", sub_call)],
        )
        .await
    }

    /// Appends one line to an append-only log field (Orange Logic has no public comments API and
    /// no conditional update). Read, append, write, then read back: when another writer's update
    /// replaced ours in between, the line is missing and the append starts again from what is
    /// there now (at most [`APPEND_ATTEMPTS`] times). A line already present is not added again,
    /// so a retried append adds it once. Connector writers also serialise per asset (a lease, see
    /// `flows::dam_log`), which closes the window this check cannot see: a stale write landing
    /// after our read-back. The text travels in a POST form body, never in a URL.
    pub async fn append_to_field(
        &self,
        record_id: &str,
        field: &str,
        line: &str,
    ) -> Result<Appended, OrangeLogicError> {
        let line = line.replace(['\r', '\n'], " ");
        for attempt in 1..=APPEND_ATTEMPTS {
            let current = self.field_value(record_id, field).await?;
            if has_line(&current, &line) {
                return Ok(if attempt == 1 {
                    Appended::AlreadyThere
                } else {
                    Appended::Written {
                        attempts: attempt - 1,
                    }
                });
            }
            let text = if current.is_empty() {
                line.clone()
            } else {
                format!("{current}\n{line}")
            };
            self.update_record(record_id, &[FieldUpdate::set(field, text)])
                .await?;
            let after = self.field_value(record_id, field).await?;
            if has_line(&after, &line) {
                return Ok(Appended::Written { attempts: attempt });
            }
            tracing::warn!(
                attempt,
                "a concurrent write replaced the appended line; appending again"
            );
        }
        Err(OrangeLogicError::AppendLost {
            attempts: APPEND_ATTEMPTS,
        })
    }

    async fn field_value(&self, record_id: &str, field: &str) -> Result<String, OrangeLogicError> {
        let record = self
            .read_asset(record_id)
            .await?
            .ok_or(OrangeLogicError::RecordNotFound)?;
        Ok(field_text(&record, field).unwrap_or_default())
    }

    /// The asset's current file version as the configured field holds it (`None` when the asset
    /// is gone or the field is empty).
    pub async fn current_version(
        &self,
        record_id: &str,
        version_field: &str,
    ) -> Result<Option<String>, OrangeLogicError> {
        Ok(self
            .read_asset(record_id)
            .await?
            .and_then(|record| field_text(&record, version_field))
            .filter(|v| !v.trim().is_empty()))
    }

    /// The RecordIDs of objects deleted since `since` (`since_parameter` = `since`).
    pub async fn deleted_objects(
        &self,
        since_parameter: &str,
        since: &str,
    ) -> Result<Vec<String>, OrangeLogicError> {
        let json = self
            .call(
                DELETED_OBJECTS_PATH,
                &[(since_parameter.to_owned(), since.to_owned())],
            )
            .await?;
        deleted_record_ids(&json)
    }

    /// A share / download link for `identifier` in `format` (`TRX`, `TR1` ...) expiring at `expires_at`
    /// (`yyyy-MM-ddTHH:mm:ss`).
    pub async fn share_link(
        &self,
        identifier: &str,
        format: &str,
        expires_at: &str,
    ) -> Result<ShareLink, OrangeLogicError> {
        let params = [
            ("Identifier", identifier),
            ("Format", format),
            ("ExpirationDate", expires_at),
            ("CreateDownloadLink", "true"),
            ("StickToCurrentVersion", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let json = self
            .call("/webapi/objectmanagement/share/getlink_4HZ_v1", &params)
            .await?;
        let url = json
            .get("link")
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| OrangeLogicError::Decode("getlink answer has no link".into()))?;
        Ok(ShareLink {
            url: url.to_owned(),
            expires_at: json
                .get("expirationDate")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// UploadNewMedia v3.0: streams the file from `open()` as multipart (never buffered whole);
    /// the folder, file name, mode and metadata go as multipart fields, not in the URL. `open` is
    /// called again for each new attempt (after a renewal, a 429 or a 503), so it must reopen the
    /// source. Nothing is resent after a timeout once the request left: the upload may have landed.
    pub async fn upload_new_media<F, S>(
        &self,
        media: &NewMedia,
        open: F,
    ) -> Result<UploadedMedia, OrangeLogicError>
    where
        F: Fn() -> std::io::Result<(S, u64)>,
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let metadata = (!media.metadata.is_empty()).then(|| {
            let metadata: Map<String, Value> = media
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            Value::Object(metadata).to_string()
        });
        let url = format!(
            "{}/API/UploadMedia/v3.0/UploadNewMedia?format=json",
            self.settings.base_url
        );
        let mut token = self.bearer(None).await?;
        let mut renewed = false;
        let mut attempt = 1;
        loop {
            let (stream, len) = open().map_err(OrangeLogicError::Media)?;
            if len > self.settings.max_upload_bytes {
                return Err(OrangeLogicError::MediaTooLarge {
                    bytes: len,
                    limit: self.settings.max_upload_bytes,
                });
            }
            // Bytes taken from the file so far; hyper takes a chunk before writing it, so fewer
            // than `len` taken means the server never had the whole file.
            let taken = Arc::new(AtomicU64::new(0));
            let body = counted_body(
                stream.map_ok(Bytes::from).map_err(Into::into),
                Arc::clone(&taken),
            );
            let part = reqwest::multipart::Part::stream_with_length(body, len)
                .file_name(media.file_name.clone());
            let mut form = reqwest::multipart::Form::new()
                .text("FolderRecordID", media.folder.clone())
                .text("FileName", media.file_name.clone())
                .text("UploadMode", media.upload_mode.clone())
                .text("format", "json");
            if let Some(metadata) = &metadata {
                form = form.text("Metadata", metadata.clone());
            }
            let form = form.part(self.settings.upload_part_name.clone(), part);
            let request = self
                .muted(self.http.post(&url))
                .timeout(self.request_timeout(self.settings.upload_timeout))
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
                .multipart(form);
            let sent = request.send().await;
            // Fewer bytes taken than the file holds: the server never had the whole file.
            let cut = sent.is_err() && taken.load(Ordering::Relaxed) < len;
            let outcome = match sent {
                // Only an upload that never left whole is safe to resend: a connection that never
                // opened, or one cut before the file's end (an incomplete upload is stored nowhere).
                Err(error) if error.is_connect() || cut => {
                    Outcome::Failed(OrangeLogicError::transport(error))
                }
                Err(error) => return Err(OrangeLogicError::transport(error)),
                Ok(response) => read_response(response).await,
            };
            match outcome {
                Outcome::Json(json) => return uploaded(&json),
                Outcome::Renew(sign) if !renewed => {
                    renewed = true;
                    token = self.renew(&token, sign).await?;
                }
                Outcome::Renew(sign) => return Err(auth_alarm(session_error(sign))),
                Outcome::Failed(OrangeLogicError::Forbidden) => {
                    return Err(auth_alarm(OrangeLogicError::Forbidden));
                }
                // A 5xx other than 503 may come after the file was stored: not resent here.
                Outcome::Failed(error @ OrangeLogicError::Server { status, .. })
                    if status != 503 =>
                {
                    return Err(error);
                }
                Outcome::Failed(error) => {
                    self.pause_before_retry(error, attempt, self.settings.upload_timeout, true)
                        .await?;
                    attempt += 1;
                    // A server that refuses an upload before reading it closes the connection
                    // on the file; its answer, most often a 401 for the token, is lost with it.
                    // The token is renewed once before the file is sent again.
                    if cut && !renewed {
                        renewed = true;
                        token = self.renew(&token, SessionSign::UploadCut).await?;
                    }
                }
            }
        }
    }
}

/// A request body of `stream` that adds the size of every chunk taken from it to `taken`.
fn counted_body<S>(stream: S, taken: Arc<AtomicU64>) -> reqwest::Body
where
    S: Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    reqwest::Body::wrap_stream(stream.inspect_ok(move |chunk| {
        taken.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }))
}

/// The media an upload answer names: its `SystemIdentifier` and, when given, its `RecordID`.
pub fn uploaded(json: &Value) -> Result<UploadedMedia, OrangeLogicError> {
    let answer = json.get("APIResponse").unwrap_or(json);
    let identifier = answer
        .get("SystemIdentifier")
        .and_then(Value::as_str)
        .ok_or_else(|| OrangeLogicError::Decode("upload answer has no SystemIdentifier".into()))?;
    Ok(UploadedMedia {
        identifier: identifier.to_owned(),
        record_id: answer
            .get("RecordID")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

async fn send(request: reqwest::RequestBuilder) -> Outcome {
    match request.send().await {
        Err(error) => Outcome::Failed(OrangeLogicError::transport(error)),
        Ok(response) => read_response(response).await,
    }
}

async fn read_response(response: reqwest::Response) -> Outcome {
    let status = response.status();
    let headers = response.headers().clone();
    match response.bytes().await {
        Ok(body) => answer::read(status, &headers, &body),
        Err(error) => Outcome::Failed(OrangeLogicError::transport(error)),
    }
}

fn session_error(sign: SessionSign) -> OrangeLogicError {
    match sign {
        SessionSign::Status401 | SessionSign::UploadCut => OrangeLogicError::Unauthorized,
        other => OrangeLogicError::SessionLost(other),
    }
}

/// Logs the alarm line of an authentication failure (the `dam_auth_failure` metric filter counts
/// it) and returns the error.
fn auth_alarm(error: OrangeLogicError) -> OrangeLogicError {
    tracing::error!(
        metric = "dam_auth_failure",
        error = %error,
        "Orange Logic refused the connector's credentials; the work goes back to its queue"
    );
    error
}

/// A uniformly random duration below `ceiling` (full jitter).
fn random_below(ceiling: Duration) -> Duration {
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    if ceiling_ms == 0 {
        return Duration::ZERO;
    }
    let random = u64::from_str_radix(&crate::crypto::random_hex(8)[..16], 16).unwrap_or(0);
    Duration::from_millis(random % ceiling_ms)
}

/// The value of `name` in `record`, matched as Orange Logic matches field names (ignoring ASCII
/// case), as text.
pub fn field_text(record: &Record, name: &str) -> Option<String> {
    let value = record.get(name).or_else(|| {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })?;
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The value of a record key; `CoreField.Identifier` and `CoreField.Unique-identifier` name the
/// same value (the documentation uses both).
fn key_value(record: &Record, key: &str) -> Option<String> {
    const IDENTIFIERS: [&str; 2] = ["CoreField.Identifier", "CoreField.Unique-identifier"];
    field_text(record, key)
        .or_else(|| {
            IDENTIFIERS
                .iter()
                .any(|i| i.eq_ignore_ascii_case(key))
                .then(|| IDENTIFIERS.iter().find_map(|i| field_text(record, i)))
                .flatten()
        })
        .filter(|v| !v.is_empty())
}

/// RecordIDs in a deleted-objects answer. The answer's shape is not public: a list at the top or
/// under a usual key, each entry a RecordID or an object carrying one.
pub fn deleted_record_ids(json: &Value) -> Result<Vec<String>, OrangeLogicError> {
    const LIST_KEYS: [&str; 5] = ["deletedObjects", "items", "records", "results", "objects"];
    const ID_KEYS: [&str; 4] = ["recordID", "recordId", "RecordID", "DO_RecordID"];
    let list = match json {
        Value::Array(list) => Some(list),
        Value::Object(map) => LIST_KEYS.iter().find_map(|key| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_array())
        }),
        _ => None,
    }
    .ok_or_else(|| OrangeLogicError::Decode("deleted-objects answer has no list".into()))?;
    Ok(list
        .iter()
        .filter_map(|entry| match entry {
            Value::String(id) => Some(id.clone()),
            Value::Object(map) => ID_KEYS
                .iter()
                .find_map(|key| map.get(*key).and_then(Value::as_str))
                .map(str::to_owned),
            _ => None,
        })
        .collect())
}

/// Opens a file as a stream of chunks for [`OrangeLogicClient::upload_new_media`].
pub fn open_file(
    path: &std::path::Path,
) -> std::io::Result<(tokio_util::io::ReaderStream<tokio::fs::File>, u64)> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    Ok((
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 64 * 1024),
        len,
    ))
}

fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deleted_objects_are_read_from_the_usual_shapes() {
        let shapes = [
            json!({"deletedObjects":[{"recordID":"2S1","identifier":"SIM1"}]}),
            json!([{"RecordID":"2S1"}]),
            json!({"Items":["2S1"]}),
        ];
        for shape in shapes {
            assert_eq!(deleted_record_ids(&shape).expect("ids"), ["2S1"], "{shape}");
        }
        assert!(deleted_record_ids(&json!({"nothing":1})).is_err());
    }

    #[test]
    fn record_keys_are_found_under_any_case_and_either_identifier_name() {
        let record: Record = serde_json::from_value(json!({
            "RecordID":"2S1","CoreField.Unique-identifier":"SIM1","CoreField.photographer":"A"
        }))
        .expect("record");
        assert_eq!(
            key_value(&record, "CoreField.Identifier").as_deref(),
            Some("SIM1")
        );
        assert_eq!(
            key_value(&record, "corefield.unique-Identifier").as_deref(),
            Some("SIM1")
        );
        assert_eq!(
            field_text(&record, "CoreField.Photographer").as_deref(),
            Some("A")
        );
        assert_eq!(key_value(&record, "CoreField.OtherNum"), None);
    }

    #[test]
    fn jitter_stays_below_its_ceiling() {
        for _ in 0..100 {
            assert!(random_below(Duration::from_millis(50)) < Duration::from_millis(50));
        }
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    }
}
