//! The local HTTP front: turns requests into API Gateway HTTP API (payload v2) events and calls the
//! function the template routes them to, as API Gateway would.

use crate::functions::HttpFn;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, Uri};
use std::net::SocketAddr;
use std::sync::Arc;

/// API Gateway's payload limit; larger requests never reach the function.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// One route: method, path, function.
#[derive(Clone)]
pub struct Route {
    /// Upper-case method.
    pub method: String,
    /// Exact path.
    pub path: String,
    /// The function.
    pub handler: HttpFn,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Route({} {})", self.method, self.path)
    }
}

/// Serves `routes` on `addr` until the task is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    routes: Vec<Route>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(Arc::new(routes));
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "local HTTP front stopped");
        }
    });
    Ok((bound, task))
}

async fn dispatch(
    State(routes): State<Arc<Vec<Route>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(route) = routes
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
    else {
        let status = if routes.iter().any(|r| r.path == path) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        return (status, r#"{"message":"Not Found"}"#).into_response();
    };
    let event = to_event(&method, &uri, headers, &body);
    into_response((route.handler)(event).await)
}

/// Builds the event API Gateway sends for this request.
pub fn to_event(
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: &[u8],
) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    event.version = Some("2.0".into());
    event.route_key = Some(format!("{method} {}", uri.path()));
    event.raw_path = Some(uri.path().to_owned());
    event.raw_query_string = Some(uri.query().unwrap_or("").to_owned());
    event.query_string_parameters = uri.query().unwrap_or("").parse().unwrap_or_default();
    event.headers = headers;
    event.request_context.http.method = method.clone();
    event.request_context.http.path = Some(uri.path().to_owned());
    event.request_context.http.protocol = Some("HTTP/1.1".into());
    event.request_context.http.source_ip = Some("127.0.0.1".into());
    event.request_context.time_epoch = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    event.request_context.request_id = Some(format!("local-{}", now.as_nanos()));
    event.request_context.stage = Some("$default".into());
    if !body.is_empty() {
        // API Gateway passes text bodies as they are and base64-encodes the rest.
        match std::str::from_utf8(body) {
            Ok(text) => event.body = Some(text.to_owned()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    event
}

fn into_response(response: ApiGatewayV2httpResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok());
    let body = match response.body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    let body = if response.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap_or(body)
    } else {
        body
    };
    (
        status.unwrap_or(StatusCode::BAD_GATEWAY),
        response.headers,
        body,
    )
        .into_response()
}
