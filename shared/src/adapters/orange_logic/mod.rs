//! Orange Logic (OrangeDAM / Cortex) client: authentication, Search v4.0 paging, DataTable v2.2
//! read and update, UploadNewMedia v3.0, share links. Facts and guesses behind each call are in
//! `docs/orange-logic.md`; everything an instance may spell differently is a setting.

pub mod error;
pub mod source;

pub use error::OrangeLogicError;

use crate::secrets::Secret;
use bytes::Bytes;
use futures::{Stream, TryStream};
use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Map, Value};
use std::time::Duration;

/// One record (asset or search item): field name → value as Orange Logic sent it.
pub type Record = Map<String, Value>;

/// The Search API endpoint.
const SEARCH_PATH: &str = "/API/Search/v4.0/Search";

/// Search v4.0 serves at most this many items per page (third-party reports; kept safe).
pub const MAX_PER_PAGE: u8 = 100;

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

/// Everything the client needs to reach one instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://customer.orangelogic.com`, no trailing slash.
    pub base_url: String,
    /// Authentication.
    pub auth: Auth,
    /// GET URLs longer than this go as POST form bodies (Orange Logic answers 403 to long URLs).
    pub max_get_url_len: usize,
    /// DataTable resource for reads and updates (`Documents.All`, or `Documents.Image.Default` ...).
    pub datatable_resource: String,
    /// Multipart part name of the file in UploadNewMedia (`InputStream` or `UploadStream`).
    pub upload_part_name: String,
    /// Timeout of ordinary calls.
    pub timeout: Duration,
    /// Timeout of uploads.
    pub upload_timeout: Duration,
    /// Webhook topics muted on the connector's own calls (`X-Mute-WebHook-Topics`, e.g. `*`), so its
    /// writes do not come back as webhooks; needs the "Mute webhooks per API call" security function.
    pub mute_webhook_topics: Option<String>,
    /// Largest file sent with UploadNewMedia (Orange Logic documents 1.5 GB for single uploads;
    /// larger files need the chunked multi-part API, not implemented).
    pub max_upload_bytes: u64,
}

impl Settings {
    /// Defaults for `base_url` and `auth`.
    pub fn new(base_url: impl Into<String>, auth: Auth) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            auth,
            max_get_url_len: 2000,
            datatable_resource: "Documents.All".into(),
            upload_part_name: "InputStream".into(),
            timeout: Duration::from_secs(20),
            upload_timeout: Duration::from_secs(900),
            max_upload_bytes: 1_500_000_000,
            mute_webhook_topics: None,
        }
    }
}

/// A search: `query` in Orange Logic's criterion syntax, the fields to return, the page size.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// E.g. `CoreField.EditDate>:2026-11-26T10:00:00`.
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
    /// Folder RecordID or unique identifier.
    pub folder: String,
    /// File name with extension.
    pub file_name: String,
    /// Metadata applied at upload (field → value).
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

/// The client. Cheap to share; the bearer token is cached and renewed once on a 401.
#[derive(Debug)]
pub struct OrangeLogicClient {
    http: reqwest::Client,
    settings: Settings,
    token: tokio::sync::Mutex<Option<Secret>>,
}

enum Method {
    Get,
    PostForm,
}

impl OrangeLogicClient {
    /// A client for one instance.
    pub fn new(settings: Settings) -> Result<Self, OrangeLogicError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(OrangeLogicError::Transport)?;
        Ok(Self {
            http,
            settings,
            token: tokio::sync::Mutex::new(None),
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
            .body(body)
            .send()
            .await
            .map_err(OrangeLogicError::Transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(OrangeLogicError::AuthRejected {
                status: status.as_u16(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(OrangeLogicError::Transport)?;
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

    /// Calls a legacy `/API/...` endpoint with `params` (plus `format=json`), GET when the URL is
    /// short and POST form otherwise; on 403 to a GET retries once as POST, on 401 renews the
    /// token once. Failures reported inside HTTP 200 are errors.
    pub async fn call(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, OrangeLogicError> {
        let query = encode_pairs(
            params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([("format", "json")]),
        );
        let url = format!("{}{path}", self.settings.base_url);
        let mut method = if url.len() + 1 + query.len() <= self.settings.max_get_url_len {
            Method::Get
        } else {
            Method::PostForm
        };
        let mut token = self.bearer(None).await?;
        let mut renewed = false;
        loop {
            let request = match method {
                Method::Get => self.http.get(format!("{url}?{query}")),
                Method::PostForm => self
                    .http
                    .post(&url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(query.clone()),
            };
            let response = self
                .muted(request)
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
                .send()
                .await
                .map_err(OrangeLogicError::Transport)?;
            match response.status() {
                StatusCode::UNAUTHORIZED if !renewed => {
                    tracing::info!("Orange Logic answered 401; renewing the token once");
                    renewed = true;
                    token = self.bearer(Some(&token)).await?;
                }
                StatusCode::FORBIDDEN if matches!(method, Method::Get) => {
                    tracing::info!(
                        url_len = url.len() + query.len(),
                        "Orange Logic answered 403 to a GET; retrying as a POST form"
                    );
                    method = Method::PostForm;
                }
                _ => return read_json(response).await,
            }
        }
    }

    /// Search v4.0 as a stream of pages, from page 1 to the last (the page whose `NextPage` is
    /// absent or whose items are empty).
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
        let first = Some((1_u32, SEARCH_PATH.to_owned(), params));
        futures::stream::try_unfold(first, move |next| async move {
            let Some((number, path, params)) = next else {
                return Ok(None);
            };
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
            let following = match href {
                Some(href) if !items.is_empty() => {
                    let (path, params) = self.next_page(href, &path, &params, number + 1);
                    Some((number + 1, path, params))
                }
                _ => None,
            };
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

    /// The request for the page `NextPage.href` names: the href itself when it points at this
    /// instance (it may carry a continuation token), else the same search with the next page number.
    fn next_page(
        &self,
        href: &str,
        path: &str,
        params: &[(String, String)],
        number: u32,
    ) -> (String, Vec<(String, String)>) {
        let local = href
            .strip_prefix(self.settings.base_url.as_str())
            .or_else(|| href.starts_with('/').then_some(href));
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

    /// DataTable v2.2 `:Read` of one record by `key_field` (e.g. `RecordID`, `CoreField.Identifier`).
    pub async fn read_record(
        &self,
        key_field: &str,
        key: &str,
    ) -> Result<Option<Record>, OrangeLogicError> {
        let path = format!(
            "/API/DataTable/v2.2/{}:Read",
            self.settings.datatable_resource
        );
        let json = match self
            .call(&path, &[(key_field.to_owned(), key.to_owned())])
            .await
        {
            Err(OrangeLogicError::NotFound) => return Ok(None),
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

    /// DataTable v2.2 `:Update` of the record with this RecordID.
    pub async fn update_record(
        &self,
        record_id: &str,
        updates: &[FieldUpdate],
    ) -> Result<(), OrangeLogicError> {
        let path = format!(
            "/API/DataTable/v2.2/{}:Update",
            self.settings.datatable_resource
        );
        let mut params = vec![("RecordID".to_owned(), record_id.to_owned())];
        params.extend(
            updates
                .iter()
                .map(|u| (format!("{}{}", u.field, u.op.suffix()), u.values.join("|"))),
        );
        let json = self.call(&path, &params).await?;
        if let Some(ignored) = json
            .get("RequestInterpretation")
            .and_then(|r| r.get("IgnoredParameters"))
            .and_then(Value::as_array)
            .filter(|i| !i.is_empty())
        {
            // A misspelt field name is silently ignored by Orange Logic: make it loud.
            return Err(OrangeLogicError::Failed {
                code: "IgnoredParameters".into(),
                message: ignored
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }

    /// Moves an asset into a folder (its physical parent), by the folder's RecordID.
    pub async fn move_to_folder(
        &self,
        record_id: &str,
        folder_record_id: &str,
    ) -> Result<(), OrangeLogicError> {
        let sub_call = format!(
            "[/API/DataTable/V2.2/Documents.Folder.Default:Read?RecordID={folder_record_id}]"
        );
        self.update_record(
            record_id,
            &[FieldUpdate::set("CoreField.Parent-folder", sub_call)],
        )
        .await
    }

    /// Appends one line to an append-only log field (Orange Logic has no public comments API).
    /// Read-modify-write: two writers racing on one asset can lose a line; callers serialise per asset.
    pub async fn append_to_field(
        &self,
        record_id: &str,
        field: &str,
        line: &str,
    ) -> Result<(), OrangeLogicError> {
        let record = self
            .read_record("RecordID", record_id)
            .await?
            .ok_or(OrangeLogicError::NotFound)?;
        let current = record.get(field).and_then(Value::as_str).unwrap_or("");
        let line = line.replace(['\r', '\n'], " ");
        let text = if current.is_empty() {
            line
        } else {
            format!("{current}\n{line}")
        };
        self.update_record(record_id, &[FieldUpdate::set(field, text)])
            .await
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

    /// UploadNewMedia v3.0: streams the file from `open()` as multipart (never buffered whole).
    /// `open` is called again for the one retry after a 401, so it must reopen the source.
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
        let query = encode_pairs(
            [
                ("FolderRecordID", media.folder.as_str()),
                ("FileName", media.file_name.as_str()),
                ("UploadMode", media.upload_mode.as_str()),
                ("format", "json"),
            ]
            .into_iter()
            .chain(metadata.as_deref().map(|m| ("Metadata", m))),
        );
        let url = format!(
            "{}/API/UploadMedia/v3.0/UploadNewMedia?{query}",
            self.settings.base_url
        );
        let mut token = self.bearer(None).await?;
        let mut renewed = false;
        loop {
            let (stream, len) = open().map_err(OrangeLogicError::Media)?;
            if len > self.settings.max_upload_bytes {
                return Err(OrangeLogicError::MediaTooLarge {
                    bytes: len,
                    limit: self.settings.max_upload_bytes,
                });
            }
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(stream),
                len,
            )
            .file_name(media.file_name.clone());
            let form =
                reqwest::multipart::Form::new().part(self.settings.upload_part_name.clone(), part);
            let response = self
                .muted(self.http.post(&url))
                .timeout(self.settings.upload_timeout)
                .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
                .multipart(form)
                .send()
                .await
                .map_err(OrangeLogicError::Transport)?;
            if response.status() == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                token = self.bearer(Some(&token)).await?;
                continue;
            }
            let json = read_json(response).await?;
            let answer = json.get("APIResponse").unwrap_or(&json);
            let identifier = answer
                .get("SystemIdentifier")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    OrangeLogicError::Decode("upload answer has no SystemIdentifier".into())
                })?;
            return Ok(UploadedMedia {
                identifier: identifier.to_owned(),
                record_id: answer
                    .get("RecordID")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
    }
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

async fn read_json(response: reqwest::Response) -> Result<Value, OrangeLogicError> {
    let status = response.status();
    if !status.is_success() {
        return Err(match status.as_u16() {
            401 => OrangeLogicError::Unauthorized,
            403 => OrangeLogicError::Forbidden,
            404 => OrangeLogicError::NotFound,
            429 => OrangeLogicError::RateLimited {
                retry_after: response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_secs),
            },
            s if s >= 500 => OrangeLogicError::Server { status: s },
            s => OrangeLogicError::Client { status: s },
        });
    }
    let bytes = response
        .bytes()
        .await
        .map_err(OrangeLogicError::Transport)?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| OrangeLogicError::Decode(format!("not JSON: {e}")))?;
    failure_inside(&json).map_or(Ok(json), Err)
}

/// The failure an HTTP 200 body reports, if any: legacy `APIResponse.Code` other than `SUCCESS`,
/// or a `/webapi` `ErrorCode`.
fn failure_inside(json: &Value) -> Option<OrangeLogicError> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(code) = json
        .get("APIResponse")
        .and_then(|r| r.get("Code"))
        .and_then(Value::as_str)
        && !code.eq_ignore_ascii_case("SUCCESS")
    {
        return Some(OrangeLogicError::Failed {
            code: code.to_owned(),
            message: text(json.get("APIResponse").and_then(|r| r.get("Message"))),
        });
    }
    if let Some(code) = json.get("ErrorCode").and_then(Value::as_str) {
        return Some(OrangeLogicError::Failed {
            code: code.to_owned(),
            message: text(json.get("Message")),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_inside_http_200_are_recognised() {
        let legacy = serde_json::json!({"APIResponse":{"Code":"ERROR","Message":"no such folder"}});
        assert!(matches!(
            failure_inside(&legacy),
            Some(OrangeLogicError::Failed { code, .. }) if code == "ERROR"
        ));
        let webapi = serde_json::json!({"Message":"gone","ErrorCode":"OL_ERR_003_REMOVED"});
        assert!(failure_inside(&webapi).is_some());
        let ok = serde_json::json!({"APIResponse":{"Code":"SUCCESS"}});
        assert!(failure_inside(&ok).is_none());
    }
}
