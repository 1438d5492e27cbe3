//! API Gateway HTTP API (payload v2) helpers: raw body bytes in, short fixed answers out.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use std::borrow::Cow;

/// The body was flagged base64 but is not.
#[derive(Debug, thiserror::Error)]
#[error("the request body is flagged base64 but does not decode")]
pub struct BodyError(#[source] base64::DecodeError);

/// The exact bytes the client sent.
pub fn raw_body(request: &ApiGatewayV2httpRequest) -> Result<Cow<'_, [u8]>, BodyError> {
    let body = request.body.as_deref().unwrap_or("");
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(Cow::Owned)
            .map_err(BodyError)
    } else {
        Ok(Cow::Borrowed(body.as_bytes()))
    }
}

/// Size of the body the client sent, without decoding it (base64 inflates by 4/3).
pub fn body_len(request: &ApiGatewayV2httpRequest) -> usize {
    let len = request.body.as_deref().map_or(0, str::len);
    if request.is_base64_encoded {
        len / 4 * 3
    } else {
        len
    }
}

/// The request method, upper-case.
pub fn method(request: &ApiGatewayV2httpRequest) -> &str {
    request.request_context.http.method.as_str()
}

/// A header's bytes (names are case-insensitive).
pub fn header<'r>(request: &'r ApiGatewayV2httpRequest, name: &str) -> Option<&'r [u8]> {
    request.headers.get(name).map(|v| v.as_bytes())
}

/// A `text/plain` response.
pub fn text(status: u16, body: impl Into<String>) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.body = Some(Body::Text(body.into()));
    response
}

/// Answers a refused or failed request: the client gets a short fixed text, the log gets the
/// cause chain once (as an error for 5xx, a warning for 4xx).
pub fn failure(
    status: u16,
    answer: &'static str,
    error: &(dyn std::error::Error + 'static),
) -> ApiGatewayV2httpResponse {
    let cause = crate::error::chain(error);
    if status >= 500 {
        tracing::error!(status, error = %cause, "request not accepted; the sender should retry");
    } else {
        tracing::warn!(status, error = %cause, "request refused");
    }
    text(status, answer)
}
