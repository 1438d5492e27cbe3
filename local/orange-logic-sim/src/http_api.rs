//! The simulator's HTTP surface. Paths are matched case-insensitively, as Orange Logic does.

use crate::store::{Query, parse_assignment};
use crate::{Change, Inner, TokenStyle, lock, random_hex};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

const TOKEN_PATH: &str = "/webapi/security/clientcredentialsauthentication/authenticate_46h_v1";
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;
const FILE_PARTS: [&str; 3] = ["InputStream", "UploadStream", "file"];

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

/// Faults, URL length and authentication, in that order. `None` lets the call through.
async fn gate(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    params: &Params,
) -> Option<Response> {
    let latency = lock(&inner.faults).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
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
        return Some(answer(
            inner,
            json_format,
            StatusCode::SERVICE_UNAVAILABLE,
            failure("UNAVAILABLE", "The server is not accepting API calls"),
        ));
    }
    if let Some(status) = forced {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = answer(inner, json_format, status, failure("FAULT", "injected"));
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        return Some(response);
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
        return Some(answer(
            inner,
            json_format,
            StatusCode::UNAUTHORIZED,
            failure("NOT_AUTHENTICATED", "Not authenticated"),
        ));
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
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
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
    if let Some(refused) = gate(&inner, &method, &uri, &headers, &params).await {
        return refused;
    }
    let json_format = wants_json(&params);
    if path == "/api/search/v4.0/search" || path == "/api/search/v3.0/search" {
        return search(&inner, uri.path(), &params);
    }
    if let Some(rest) = path.strip_prefix("/api/datatable/v2.2/") {
        let verb = rest.rsplit_once(':').map(|(_, v)| v).unwrap_or("");
        return match verb {
            "read" => datatable_read(&inner, &params),
            "update" => datatable_update(&inner, &params, muted(&headers, "asset.edited")),
            _ => answer(
                &inner,
                json_format,
                StatusCode::OK,
                failure("ERROR", "unsupported DataTable verb in the simulator"),
            ),
        };
    }
    if path == "/webapi/objectmanagement/share/getlink_4hz_v1" {
        return get_link(&inner, &params);
    }
    answer(
        &inner,
        true,
        StatusCode::NOT_FOUND,
        json!({"Message":"No such endpoint","ErrorCode":"OL_ERR_001_NOTFOUND"}),
    )
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
    let page = param(params, "pagenumber")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let store = lock(&inner.store);
    let query_text = param(params, "query").unwrap_or("").to_owned();
    // Later pages of the same query reuse its result set until the content changes, as a search
    // index would; a 100,000-asset scan then costs one pass, not one per page.
    let matching: Arc<Vec<String>> = {
        let mut cache = lock(&inner.search_cache);
        match &*cache {
            Some((text, generation, ids))
                if *text == query_text && *generation == store.generation =>
            {
                Arc::clone(ids)
            }
            _ => {
                let ids: Arc<Vec<String>> =
                    Arc::new(store.search(&query).map(|a| a.record_id.clone()).collect());
                *cache = Some((query_text, store.generation, Arc::clone(&ids)));
                ids
            }
        }
    };
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|id| store.assets.get(id))
        .map(|asset| {
            let item: serde_json::Map<String, Value> = fields
                .iter()
                .map(|field| {
                    let value = match field.strip_prefix("Path_") {
                        Some(format) => json!({
                            "URI": format!("{}/Assets/V2/{}/{}-{format}.jpg?Expires=3600",
                                inner.base_url, random_hex(4), asset.identifier),
                            "Width": 1200, "Height": 800}),
                        None => {
                            Value::String(store.search_value(asset, field).unwrap_or("").to_owned())
                        }
                    };
                    (field.clone(), value)
                })
                .collect();
            Value::Object(item)
        })
        .collect();
    drop(store);
    let next = (page * per_page < total).then(|| {
        let mut next: Params = params
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("pagenumber") && !k.eq_ignore_ascii_case("token")
            })
            .cloned()
            .collect();
        next.retain(|(k, _)| !k.eq_ignore_ascii_case("continuation"));
        next.push(("pagenumber".into(), (page + 1).to_string()));
        next.push(("continuation".into(), random_hex(8)));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        json!({"href": format!("{}{path}?{query}", inner.base_url), "rel": "next"})
    });
    let mut global = json!({"TotalCount": total,
                            "QueryDurationMilliseconds": started.elapsed().as_millis() as u64});
    if let Some(next) = next {
        global["NextPage"] = next;
    }
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Search"),
               "APIResponse": {"GlobalInfo": global, "Items": items}}),
    )
}

const CONTROL_PARAMS: [&str; 2] = ["format", "token"];
const KEY_PARAMS: [&str; 3] = [
    "RecordID",
    "CoreField.Identifier",
    "CoreField.Unique-identifier",
];

fn key_of(params: &Params) -> Option<(&str, &str)> {
    params
        .iter()
        .find(|(k, _)| KEY_PARAMS.iter().any(|key| key.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

fn datatable_read(inner: &Inner, params: &Params) -> Response {
    let json_format = wants_json(params);
    let Some((key_field, key)) = key_of(params) else {
        return answer(
            inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", "no identifying field"),
        );
    };
    let ignored: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            !CONTROL_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(k))
                && !k.eq_ignore_ascii_case(key_field)
        })
        .collect();
    let store = lock(&inner.store);
    let records: Vec<Value> = store
        .find(key_field, key)
        .map(|asset| Value::Object(store.record(asset)))
        .into_iter()
        .collect();
    let count = records.len();
    answer(
        inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("Documents.All:Read"),
               "RequestInterpretation": {"Filters":[{"Field": key_field, "Operator":"=", "Value": key}],
                                          "IgnoredParameters": ignored},
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

fn datatable_update(inner: &Inner, params: &Params, mute: bool) -> Response {
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
        if k.eq_ignore_ascii_case(key_field)
            || CONTROL_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(k))
        {
            continue;
        }
        match parse_assignment(k) {
            Some((field, op)) => assignments.push((field, op, v.clone())),
            None => ignored.push(k.clone()),
        }
    }
    let result = {
        let mut store = inner.store();
        let record_id = store.find(key_field, key).map(|a| a.record_id.clone());
        record_id
            .ok_or_else(|| crate::UpdateError::NoRecord(key.to_owned()))
            .and_then(|id| {
                store
                    .update(&id, &assignments)
                    .map(|more_ignored| (id, more_ignored))
            })
    };
    match result {
        Err(error) => answer(
            inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", &error.to_string()),
        ),
        Ok((record_id, more_ignored)) => {
            let applied = assignments.len() - more_ignored.len();
            ignored.extend(more_ignored);
            if applied > 0 && !mute {
                inner.announce(Change::Edited(record_id.clone()));
            }
            answer(
                inner,
                json_format,
                StatusCode::OK,
                json!({"APIRequestInfo": request_info("Documents.All:Update"),
                       "RequestInterpretation": {"IgnoredParameters": ignored},
                       "Response": {"RecordID": record_id, "RecordsAffected": 1}}),
            )
        }
    }
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
    let token = random_hex(12);
    lock(&inner.links).insert(token.clone(), (asset.record_id.clone(), expires.clone()));
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
        Some((record_id, expires)) if expires.is_empty() || crate::now() < expires => {
            (StatusCode::OK, format!("asset {record_id}")).into_response()
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
    let json_format = wants_json(&params);
    let mut received: Option<(String, u64, String)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => {
                return answer(
                    &inner,
                    json_format,
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
                                json_format,
                                StatusCode::PAYLOAD_TOO_LARGE,
                                failure("TOO_LARGE", "the file exceeds the upload limit"),
                            );
                        }
                        digest.update(&chunk);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return answer(
                            &inner,
                            json_format,
                            StatusCode::BAD_REQUEST,
                            failure("ERROR", "the upload stream broke"),
                        );
                    }
                }
            }
            received = Some((file_name, size, hex::encode(digest.finish().as_ref())));
        } else if let Ok(text) = field.text().await {
            params.push((name, text));
        }
    }
    let Some((part_file_name, size, sha256)) = received else {
        return answer(
            &inner,
            json_format,
            StatusCode::OK,
            failure("ERROR", "no file part (InputStream) in the upload"),
        );
    };
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
    answer(
        &inner,
        json_format,
        StatusCode::OK,
        json!({"APIRequestInfo": request_info("UploadNewMedia"),
               "APIResponse": {"Code":"SUCCESS","SystemIdentifier": created.1, "RecordID": created.0}}),
    )
}
