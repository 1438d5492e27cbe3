//! The simulator's HTTP surface. Paths are matched case-insensitively, as Orange Logic does; the
//! DataTable answers only the documented resources, verbs and keys.

use crate::store::{Asset, Query, Store, parse_assignment};
use crate::{
    CallRecord, Change, Inner, RetryAfterStyle, SessionExpiry, TokenStyle, lock, random_hex,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const TOKEN_PATH: &str = "/webapi/security/clientcredentialsauthentication/authenticate_46h_v1";
const DELETED_PATH: &str = "/webapi/objectmanagement/deletion/getdeletedobjects_45c_v1";
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;
const FILE_PARTS: [&str; 3] = ["InputStream", "UploadStream", "file"];
const CONTROL_PARAMS: [&str; 2] = ["format", "token"];
const KEY_PARAMS: [&str; 3] = [
    "RecordID",
    "CoreField.Identifier",
    "CoreField.Unique-identifier",
];
const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\
<form id=\"login\" method=\"post\" action=\"/Login\"><input name=\"Login\"/><input name=\"Password\" type=\"password\"/></form>\
</body></html>";

type Params = Vec<(String, String)>;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/API/UploadMedia/v3.0/UploadNewMedia", post(upload))
        .route("/api/uploadmedia/v3.0/uploadnewmedia", post(upload))
        .route("/share/{token}", get(share))
        .fallback(dispatch)
        .layer(DefaultBodyLimit::disable())
        .with_state(inner)
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_control(name: &str) -> bool {
    CONTROL_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(name))
}

fn is_key(name: &str) -> bool {
    KEY_PARAMS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

fn wants_json(params: &Params) -> bool {
    param(params, "format").is_some_and(|f| f.eq_ignore_ascii_case("json"))
}

fn parse_pairs(text: &[u8]) -> Params {
    form_urlencoded::parse(text).into_owned().collect()
}

fn answer(inner: &Inner, json_format: bool, status: StatusCode, body: Value) -> Response {
    *lock(&inner.stats)
        .statuses
        .entry(status.as_u16())
        .or_default() += 1;
    if json_format {
        (status, axum::Json(body)).into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            crate::xml::render(&body),
        )
            .into_response()
    }
}

fn request_info(resource: &str) -> Value {
    json!({"APIVersion":"V2.2","IsLoggedIn":true,"Module":"Simulator","Resource":resource,
           "Status":"LoggedIn","TimeoutPeriodMinutes":60})
}

fn failure(code: &str, message: &str) -> Value {
    json!({"APIRequestInfo": request_info("failure"), "APIResponse":{"Code":code,"Message":message}})
}

fn http_date(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    jiff::Timestamp::from_second(i64::try_from(seconds).unwrap_or(0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn with_retry_after(inner: &Inner, mut response: Response) -> Response {
    let value = match inner.behaviour().retry_after {
        RetryAfterStyle::Seconds(n) => n.to_string(),
        RetryAfterStyle::HttpDate(n) => {
            let seconds = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + n;
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
            lock(&inner.stats).retry_after_dates.push(at);
            http_date(at)
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// What an expired or unknown token gets.
fn not_authenticated(inner: &Inner, json_format: bool) -> Response {
    match inner.behaviour().session_expiry {
        SessionExpiry::Status401 => answer(
            inner,
            json_format,
            StatusCode::UNAUTHORIZED,
            failure("NOT_AUTHENTICATED", "Not authenticated"),
        ),
        SessionExpiry::HtmlLoginPage => {
            *lock(&inner.stats).statuses.entry(200).or_default() += 1;
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                LOGIN_PAGE,
            )
                .into_response()
        }
        SessionExpiry::RedirectToLogin => {
            *lock(&inner.stats).statuses.entry(302).or_default() += 1;
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, "/Login?ReturnUrl=%2fAPI"),
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                ],
                LOGIN_PAGE,
            )
                .into_response()
        }
    }
}

/// Records the call, then faults, URL length and authentication, in that order. `None` lets the
/// call through.
async fn gate(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    params: &Params,
) -> Option<Response> {
    lock(&inner.stats).calls.push(CallRecord {
        method: method.to_string(),
        path: uri.path().to_ascii_lowercase(),
        url_len: uri.to_string().len(),
        at: SystemTime::now(),
    });
    let latency = lock(&inner.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let hang = {
        let mut faults = lock(&inner.faults);
        let hang = faults.hang_next > 0;
        faults.hang_next = faults.hang_next.saturating_sub(1);
        hang
    };
    if hang {
        // Never answered: the client's timeout (or its going away) ends this.
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
    let json_format = wants_json(params);
    let (unavailable, forced) = {
        let mut faults = lock(&inner.faults);
        let unavailable = faults
            .unavailable_until
            .is_some_and(|until| Instant::now() < until);
        let forced = if unavailable {
            None
        } else {
            faults.fail_next.pop()
        };
        (unavailable, forced)
    };
    if unavailable {
        return Some(with_retry_after(
            inner,
            answer(
                inner,
                json_format,
                StatusCode::SERVICE_UNAVAILABLE,
                failure("UNAVAILABLE", "The server is not accepting API calls"),
            ),
        ));
    }
    if let Some(status) = forced {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let response = answer(inner, json_format, status, failure("FAULT", "injected"));
        return Some(if matches!(status.as_u16(), 429 | 503) {
            with_retry_after(inner, response)
        } else {
            response
        });
    }
    if *method == Method::GET && uri.to_string().len() > inner.config.max_url_len {
        return Some(answer(
            inner,
            json_format,
            StatusCode::FORBIDDEN,
            failure("FORBIDDEN", "URL too long"),
        ));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| param(params, "token").map(str::to_owned));
    if !bearer.is_some_and(|t| inner.token_valid(&t)) {
        return Some(not_authenticated(inner, json_format));
    }
    None
}

async fn dispatch(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_ascii_lowercase();
    let mut params = parse_pairs(uri.query().unwrap_or("").as_bytes());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    let is_json = content_type.starts_with("application/json");
    if body.len() > MAX_FORM_BYTES {
        return answer(
            &inner,
            true,
            StatusCode::PAYLOAD_TOO_LARGE,
            failure("TOO_LARGE", ""),
        );
    }
    if is_form {
        params.extend(parse_pairs(&body));
    }
    if path == TOKEN_PATH {
        if let Some(refused) = gate_faults_only(&inner).await {
            return refused;
        }
        if is_json && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
            params.extend(
                map.into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned()))),
            );
        }
        return token(&inner, &params);
    }
    if inner.behaviour().drop_format_parameter && path.starts_with("/api/") {
        params.retain(|(k, _)| !k.eq_ignore_ascii_case("format"));
    }
    if let Some(refused) = gate(&inner, &method, &uri, &headers, &params).await {
        return refused;
    }
    let json_format = wants_json(&params);
    if path == "/api/search/v4.0/search" || path == "/api/search/v3.0/search" {
        return search(&inner, uri.path(), &params);
    }
    if let Some(rest) = path.strip_prefix("/api/datatable/v2.2/") {
        let (resource, verb) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let muted = muted(&headers, "asset.edited");
        return match (Resource::parse(resource), verb) {
            (Some(Resource::All), "read") => asset_read(&inner, None, &params),
            (Some(Resource::Assets { doc_type, subtype }), "read") => {
                asset_read(&inner, Some((&doc_type, &subtype)), &params)
            }
            (Some(Resource::Assets { doc_type, subtype }), "update") => {
                asset_update(&inner, (&doc_type, &subtype), &params, muted)
            }
            (Some(Resource::Folders), "read") => folder_read(&inner, &params),
            (Some(Resource::Folders), "create") => folder_create(&inner, &params),
            (Some(_), _) => answer(
                &inner,
                json_format,
                StatusCode::OK,
                failure(
                    "UNSUPPORTED_OPERATION",
                    "this resource does not support this verb",
                ),
            ),
            (None, _) => answer(
                &inner,
                json_format,
                StatusCode::OK,
                failure("INVALID_RESOURCE", "unknown DataTable resource"),
            ),
        };
    }
    if path == "/webapi/objectmanagement/share/getlink_4hz_v1" {
        return get_link(&inner, &params);
    }
    if path == DELETED_PATH {
        return deleted_objects(&inner, &params);
    }
    answer(
        &inner,
        true,
        StatusCode::NOT_FOUND,
        json!({"Message":"No such endpoint","ErrorCode":"OL_ERR_001_NOTFOUND"}),
    )
}

/// A DataTable resource the documentation shows.
enum Resource {
    /// `Documents.All`: reads across types.
    All,
    /// `Documents.Folder.<subtype>`.
    Folders,
    /// `Documents.<type>.<subtype>`.
    Assets { doc_type: String, subtype: String },
}

impl Resource {
    fn parse(lower: &str) -> Option<Self> {
        let mut parts = lower.splitn(3, '.');
        if parts.next()? != "documents" {
            return None;
        }
        match (parts.next()?, parts.next()) {
            ("all", None) => Some(Self::All),
            ("folder", Some(_)) => Some(Self::Folders),
            (doc_type, Some(subtype)) if !doc_type.is_empty() && !subtype.is_empty() => {
                Some(Self::Assets {
                    doc_type: doc_type.to_owned(),
                    subtype: subtype.to_owned(),
                })
            }
            _ => None,
        }
    }
}

fn in_scope(asset: &Asset, scope: Option<(&str, &str)>) -> bool {
    scope.is_none_or(|(doc_type, subtype)| {
        asset.doc_type().eq_ignore_ascii_case(doc_type)
            && asset.doc_subtype().eq_ignore_ascii_case(subtype)
    })
}

async fn gate_faults_only(inner: &Inner) -> Option<Response> {
    let unavailable = lock(&inner.faults)
        .unavailable_until
        .is_some_and(|until| Instant::now() < until);
    unavailable.then(|| {
        answer(
            inner,
            true,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error":"unavailable"}),
        )
    })
}

fn token(inner: &Inner, params: &Params) -> Response {
    let valid = param(params, "grant_type") == Some("client_credentials")
        && inner.config.clients.iter().any(|(id, secret)| {
            param(params, "client_id") == Some(id) && param(params, "client_secret") == Some(secret)
        });
    if !valid {
        return answer(
            inner,
            true,
            StatusCode::UNAUTHORIZED,
            json!({"error":"invalid_client"}),
        );
    }
    let token = inner.issue_token();
    let body = match inner.config.token_style {
        TokenStyle::SnakeCase => {
            json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        }
        TokenStyle::CamelCase => json!({"accessToken": token, "expiresInSeconds": 3600}),
    };
    answer(inner, true, StatusCode::OK, body)
}

fn search(inner: &Inner, path: &str, params: &Params) -> Response {
    let json_format = wants_json(params);
    let behaviour = inner.behaviour();
    let started = Instant::now();
    {
        let mut stats = lock(&inner.stats);
        stats.searches += 1;
        if param(params, "continuation").is_some() {
            stats.next_pages_followed += 1;
        }
    }
    let query = match Query::parse(param(params, "query").unwrap_or("")) {
        Ok(query) => query,
        Err(error) => {
            return answer(
                inner,
                json_format,
                StatusCode::OK,
                failure("ERROR", &error.to_string()),
            );
        }
    };
    let fields: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("fields"))
        .flat_map(|(_, v)| v.split(','))
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    let per_page = param(params, "countperpage")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, inner.config.max_per_page);
    let page = if behaviour.ignore_page_number {
        1
    } else {
        param(params, "pagenumber")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let sort = param(params, "sort").unwrap_or("").to_owned();
    let store = inner.read_store();
    let cache_key = format!("{}\n{sort}", param(params, "query").unwrap_or(""));
    // Later pages of the same query reuse its result set until the content changes, as a search
    // index would; a 100,000-asset scan then costs one pass, not one per page.
    let cached = {
        let cache = lock(&inner.search_cache);
        match &*cache {
            Some((text, generation, ids))
                if *text == cache_key && *generation == store.generation =>
            {
                Some(Arc::clone(ids))
            }
            _ => None,
        }
    };
    let matching: Arc<Vec<String>> = match cached {
        Some(ids) => ids,
        None => {
            let ordered = store.search(&query).and_then(|mut found| {
                store.sort(&mut found, &sort)?;
                Ok(found
                    .iter()
                    .map(|a| a.record_id.clone())
                    .collect::<Vec<_>>())
            });
            match ordered {
                Ok(ids) => {
                    let ids = Arc::new(ids);
                    *lock(&inner.search_cache) =
                        Some((cache_key, store.generation, Arc::clone(&ids)));
                    ids
                }
                Err(error) => {
                    drop(store);
                    return answer(
                        inner,
                        json_format,
                        StatusCode::OK,
                        failure("ERROR", &error.to_string()),
                    );
                }
            }
        }
    };
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|id| store.assets.get(id))
        .map(|asset| search_item(inner, &store, asset, &fields))
        .collect();
    drop(store);
    let next = (behaviour.ignore_page_number || page * per_page < total).then(|| {
        let mut next: Params = params
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("pagenumber")
                    && !k.eq_ignore_ascii_case("token")
                    && !k.eq_ignore_ascii_case("continuation")
            })
            .cloned()
            .collect();
        next.push(("pagenumber".into(), (page + 1).to_string()));
        next.push(("continuation".into(), random_hex(8)));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        json!({"href": format!("{}{path}?{query}", inner.base_url), "rel": "next"})
    });
    let mut response = json!({"Items": items});
    if behaviour.global_info {
        let mut global = json!({"TotalCount": total,
                                "QueryDurationMilliseconds": started.elapsed().as_millis() as u64});
        if let Some(next) = next {
            global["NextPage"] = next;
        }
        response["GlobalInfo"] = global;
    }
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Search"), "APIResponse": response}),
    )
}

fn search_item(inner: &Inner, store: &Store, asset: &Asset, fields: &[String]) -> Value {
    let item: serde_json::Map<String, Value> = fields
        .iter()
        .map(|field| match field.strip_prefix("Path_") {
            Some(format) => (
                field.clone(),
                json!({
                    "URI": format!("{}/Assets/V2/{}/{}-{format}.jpg?Expires=3600",
                        inner.base_url, random_hex(4), asset.identifier),
                    "Width": 1200, "Height": 800}),
            ),
            None => {
                // Answered in the instance's spelling of the field, whatever the request's.
                let name = store.canonical(field).unwrap_or_else(|| field.clone());
                let value = store
                    .search_value(asset, field)
                    .map(|v| store.written(&name, v))
                    .unwrap_or_default();
                (name, Value::String(value))
            }
        })
        .collect();
    Value::Object(item)
}

fn interpretation(filters: &[(String, String)], ignored: &[String]) -> Value {
    json!({"Filters": filters.iter().map(|(field, value)|
              json!({"Field": field, "Operator": "=", "OperatorDescription": "Field must be equal to value", "Value": value}))
              .collect::<Vec<_>>(),
           "IgnoredParameters": ignored})
}

/// Splits read parameters into filters (keys and known fields) and ignored names.
fn read_filters(store: &Store, params: &Params) -> (Vec<(String, String)>, Vec<String>) {
    let mut filters = Vec::new();
    let mut ignored = Vec::new();
    for (k, v) in params {
        if is_control(k) {
            continue;
        }
        if is_key(k) || store.knows_field(k) {
            filters.push((k.clone(), v.clone()));
        } else {
            ignored.push(k.clone());
        }
    }
    (filters, ignored)
}

fn asset_read(inner: &Inner, scope: Option<(&str, &str)>, params: &Params) -> Response {
    let json_format = wants_json(params);
    let store = inner.read_store();
    let (filters, ignored) = read_filters(&store, params);
    if filters.is_empty() {
        drop(store);
        return answer(
            inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", "no identifying field"),
        );
    }
    let records: Vec<Value> = store
        .assets
        .values()
        .filter(|asset| in_scope(asset, scope))
        .filter(|asset| {
            filters.iter().all(|(k, v)| {
                if is_key(k) {
                    store
                        .find(k, v)
                        .is_some_and(|a| a.record_id == asset.record_id)
                } else {
                    store
                        .search_value(asset, k)
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                }
            })
        })
        .map(|asset| Value::Object(store.record(asset)))
        .collect();
    drop(store);
    let count = records.len();
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Documents:Read"),
               "RequestInterpretation": interpretation(&filters, &ignored),
               "Response": records,
               "ResponseSummary": {"CurrentPage":1,"ItemsPerPage":30,"TotalItemCount":count}}),
    )
}

/// Whether the caller muted `topic` with `X-Mute-WebHook-Topics` (comma list, `*` for all).
fn muted(headers: &HeaderMap, topic: &str) -> bool {
    headers
        .get("x-mute-webhook-topics")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t == "*" || t.eq_ignore_ascii_case(topic))
        })
}

fn key_of(params: &Params) -> Option<(&str, &str)> {
    params
        .iter()
        .find(|(k, _)| is_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn record_result(record_id: &str, code: &str, details: &[String]) -> Value {
    let mut result = json!({"Code": code});
    if !details.is_empty() {
        result["ErrorList"] = details
            .iter()
            .map(|d| json!({"ErrorDetails": d}))
            .collect::<Vec<_>>()
            .into();
    }
    json!({"RecordID": record_id, "Result": result})
}

fn asset_update(inner: &Inner, scope: (&str, &str), params: &Params, mute: bool) -> Response {
    let json_format = wants_json(params);
    let Some((key_field, key)) = key_of(params) else {
        return answer(
            inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", "no identifying field"),
        );
    };
    let mut assignments = Vec::new();
    let mut ignored = Vec::new();
    for (k, v) in params {
        if k.eq_ignore_ascii_case(key_field) || is_control(k) {
            continue;
        }
        match parse_assignment(k) {
            Some((field, op)) => assignments.push((field, op, v.clone())),
            None => ignored.push(k.clone()),
        }
    }
    let filters = [(key_field.to_owned(), key.to_owned())];
    let result = {
        let mut store = inner.store();
        let record_id = store
            .find(key_field, key)
            .filter(|a| in_scope(a, Some(scope)))
            .map(|a| a.record_id.clone());
        record_id.map(|id| {
            let outcome = store.update(&id, &assignments);
            (id, outcome)
        })
    };
    let Some((record_id, outcome)) = result else {
        return answer(
            inner,
            json_format,
            StatusCode::OK,
            json!({"APIRequestInfo": request_info("Documents:Update"),
                   "RequestInterpretation": interpretation(&filters, &ignored),
                   "Response": {"Code": "RECORD_NOT_FOUND",
                                "Message": "No record matches the identifying field",
                                "RecordsAffected": []}}),
        );
    };
    let affected = match outcome {
        Err(error) => record_result(&record_id, "UPDATE_FAILED", &[error.to_string()]),
        Ok(more_ignored) => {
            let applied = assignments.len() - more_ignored.len();
            ignored.extend(more_ignored);
            if applied > 0 && !mute {
                inner.announce(Change::Edited(record_id.clone()));
            }
            record_result(&record_id, "SUCCESS", &[])
        }
    };
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Documents:Update"),
               "RequestInterpretation": interpretation(&filters, &ignored),
               "Response": {"RecordsAffected": [affected]}}),
    )
}

fn folder_read(inner: &Inner, params: &Params) -> Response {
    let json_format = wants_json(params);
    let store = inner.read_store();
    let mut filters = Vec::new();
    let mut ignored = Vec::new();
    for (k, v) in params {
        if is_control(k) {
            continue;
        }
        let known = is_key(k)
            || k.eq_ignore_ascii_case("CoreField.Title")
            || k.eq_ignore_ascii_case("CoreField.Parent-folder");
        if known {
            filters.push((k.clone(), v.clone()));
        } else {
            ignored.push(k.clone());
        }
    }
    let records: Vec<Value> = store
        .folders
        .values()
        .filter(|folder| {
            filters.iter().all(|(k, v)| {
                let k = k.to_ascii_lowercase();
                match k.as_str() {
                    "recordid" => folder.record_id == *v,
                    "corefield.title" => folder.title.eq_ignore_ascii_case(v),
                    "corefield.parent-folder" => folder.parent.as_deref() == Some(v.as_str()),
                    _ => folder.identifier == *v,
                }
            })
        })
        .map(|folder| Value::Object(store.folder_record(folder)))
        .collect();
    drop(store);
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Documents.Folder:Read"),
               "RequestInterpretation": interpretation(&filters, &ignored),
               "Response": records}),
    )
}

fn folder_create(inner: &Inner, params: &Params) -> Response {
    let json_format = wants_json(params);
    let title = param(params, "CoreField.Title:")
        .map(str::trim)
        .unwrap_or("");
    let parent = param(params, "CoreField.Parent-folder:").map(str::trim);
    let ignored: Vec<String> = params
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !is_control(k)
                && !k.eq_ignore_ascii_case("CoreField.Title:")
                && !k.eq_ignore_ascii_case("CoreField.Parent-folder:")
        })
        .collect();
    let created = {
        let mut store = inner.store();
        match parent {
            Some(parent) if store.resolve_folder(parent).is_none() => Err(format!(
                "parent folder {parent} does not resolve to a folder RecordID"
            )),
            _ if title.is_empty() => Err("CoreField.Title is required".to_owned()),
            _ => Ok(store.add_folder(title, parent.map(str::to_owned))),
        }
    };
    let body = match created {
        Ok(id) => json!({"RecordID": id, "RecordsAffected": [record_result(&id, "SUCCESS", &[])]}),
        Err(detail) => json!({"RecordsAffected": [record_result("", "CREATE_FAILED", &[detail])]}),
    };
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Documents.Folder:Create"),
               "RequestInterpretation": interpretation(&[], &ignored),
               "Response": body}),
    )
}

fn deleted_objects(inner: &Inner, params: &Params) -> Response {
    let unknown = params
        .iter()
        .any(|(k, _)| !is_control(k) && !k.eq_ignore_ascii_case("StartDate"));
    let store = inner.read_store();
    let start = param(params, "StartDate").map(|d| store.clock.accept(d));
    let (Some(Some(start)), false) = (start, unknown) else {
        drop(store);
        return answer(
            inner,
            true,
            StatusCode::BAD_REQUEST,
            json!({"Message":"StartDate (YYYY-MM-DDTHH:MM:SS) is required and is the only parameter",
                   "ErrorCode":"OL_ERR_006_BADREQUEST"}),
        );
    };
    let deleted: Vec<Value> = store
        .deleted
        .iter()
        .filter(|d| d.at >= start)
        .map(|d| {
            json!({"recordID": d.record_id, "identifier": d.identifier,
                   "deletionDate": store.clock.render(&d.at)})
        })
        .collect();
    drop(store);
    answer(
        inner,
        true,
        StatusCode::OK,
        json!({"deletedObjects": deleted}),
    )
}

fn get_link(inner: &Inner, params: &Params) -> Response {
    let identifier = param(params, "Identifier").unwrap_or("");
    let format = param(params, "Format").unwrap_or("TRX").to_owned();
    let expires = param(params, "ExpirationDate").unwrap_or("").to_owned();
    let store = lock(&inner.store);
    let asset = store
        .find("RecordID", identifier)
        .or_else(|| store.find("CoreField.Identifier", identifier))
        .cloned();
    drop(store);
    let Some(asset) = asset else {
        return answer(
            inner,
            true,
            StatusCode::NOT_FOUND,
            json!({"Message":"Asset not found","ErrorCode":"OL_ERR_001_NOTFOUND","Asset Identifier": identifier}),
        );
    };
    // A format the instance does not have is refused, as an unknown parameter value is.
    let Some(format) = inner
        .config
        .formats
        .iter()
        .find(|f| f.eq_ignore_ascii_case(&format))
        .cloned()
    else {
        return answer(
            inner,
            true,
            StatusCode::BAD_REQUEST,
            json!({"Message": format!("Unknown format {format}"), "ErrorCode":"OL_ERR_006_BADREQUEST"}),
        );
    };
    let token = random_hex(12);
    lock(&inner.links).insert(
        token.clone(),
        (asset.record_id.clone(), expires.clone(), format.clone()),
    );
    answer(
        inner,
        true,
        StatusCode::OK,
        json!({"recordID": asset.record_id, "identifier": asset.identifier, "format": format,
               "link": format!("{}/share/{token}", inner.base_url), "expirationDate": expires}),
    )
}

async fn share(State(inner): State<Arc<Inner>>, Path(token): Path<String>) -> Response {
    let link = lock(&inner.links).get(&token).cloned();
    match link {
        Some((record_id, expires, format)) if expires.is_empty() || crate::now() < expires => {
            (StatusCode::OK, format!("asset {record_id} as {format}")).into_response()
        }
        Some(_) => (StatusCode::GONE, "link expired").into_response(),
        None => (StatusCode::NOT_FOUND, "no such link").into_response(),
    }
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let mut params = parse_pairs(uri.query().unwrap_or("").as_bytes());
    if let Some(refused) = gate(&inner, &method, &uri, &headers, &params).await {
        return refused;
    }
    let mut received: Option<(String, u64, String, Vec<u8>)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return answer(
                    &inner,
                    wants_json(&params),
                    StatusCode::BAD_REQUEST,
                    failure("ERROR", "malformed multipart body"),
                );
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        if FILE_PARTS.contains(&name.as_str()) {
            let file_name = field.file_name().unwrap_or("upload.bin").to_owned();
            let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let mut size: u64 = 0;
            let mut head = Vec::new();
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        size += chunk.len() as u64;
                        if size > inner.config.max_upload_bytes {
                            // Nothing more is kept; the rest is read and discarded so the client
                            // gets the answer instead of a reset connection.
                            while let Ok(Some(_)) = field.chunk().await {}
                            return answer(
                                &inner,
                                wants_json(&params),
                                StatusCode::PAYLOAD_TOO_LARGE,
                                failure("TOO_LARGE", "the file exceeds the upload limit"),
                            );
                        }
                        digest.update(&chunk);
                        let room = crate::store::KEPT_BYTES.saturating_sub(head.len());
                        head.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return answer(
                            &inner,
                            wants_json(&params),
                            StatusCode::BAD_REQUEST,
                            failure("ERROR", "the upload stream broke"),
                        );
                    }
                }
            }
            received = Some((file_name, size, hex::encode(digest.finish().as_ref()), head));
        } else if let Ok(text) = field.text().await {
            params.push((name, text));
        }
    }
    let json_format = wants_json(&params);
    let Some((part_file_name, size, sha256, head)) = received else {
        return answer(
            &inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", "no file part (InputStream) in the upload"),
        );
    };
    let fail_upload = lock(&inner.faults).fail_uploads.pop();
    if let Some((status, false)) = fail_upload {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return answer(&inner, json_format, status, failure("FAULT", "injected"));
    }
    let fail_after_storing = fail_upload.map(|(status, _)| status);
    let file_name = param(&params, "FileName").map_or(part_file_name, str::to_owned);
    let folder = param(&params, "FolderRecordID").unwrap_or("").to_owned();
    let metadata: serde_json::Map<String, Value> = param(&params, "Metadata")
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let created = {
        let mut store = inner.store();
        let Some(folder_id) = store.resolve_folder(&folder).map(|f| f.record_id.clone()) else {
            drop(store);
            return answer(
                &inner,
                json_format,
                StatusCode::OK,
                failure("ERROR", "FolderRecordID does not name a folder"),
            );
        };
        let mut fields: std::collections::BTreeMap<String, String> = metadata
            .iter()
            .filter(|(k, _)| store.knows_field(k))
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        fields
            .entry("CoreField.Title".into())
            .or_insert_with(|| file_name.clone());
        fields.insert("CoreField.Parent-folder".into(), folder_id);
        let record_id = store.add_asset(fields);
        if let Some(asset) = store.assets.get_mut(&record_id) {
            asset.versions.push(crate::store::Version {
                number: 1,
                file_name,
                size,
                sha256,
                head,
            });
        }
        let identifier = store
            .assets
            .get(&record_id)
            .map(|a| a.identifier.clone())
            .unwrap_or_default();
        (record_id, identifier)
    };
    {
        let mut stats = lock(&inner.stats);
        stats.largest_upload = stats.largest_upload.max(size);
    }
    if !muted(&headers, "asset.created") {
        inner.announce(Change::Created(created.0.clone()));
    }
    if let Some(status) = fail_after_storing {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
        return answer(
            &inner,
            json_format,
            status,
            failure("FAULT", "injected after the upload was stored"),
        );
    }
    answer(
        &inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("UploadNewMedia"),
               "APIResponse": {"Code":"SUCCESS","SystemIdentifier": created.1, "RecordID": created.0}}),
    )
}
