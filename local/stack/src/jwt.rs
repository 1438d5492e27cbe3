//! The operator API's JWT authorizer, as the local front plays it: API Gateway checks the token's
//! signature, issuer, audience and expiry before any function runs, and answers 401 otherwise.
//! Leniency, written down: locally the tokens are HS256 under a key of the stack's own (API
//! Gateway verifies an identity provider's RS256 keys from its JWKS); the claims checked are
//! the same.

use crate::functions::HttpFn;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;

/// The issuer the local stack's tokens carry (the template's `OperatorJwtIssuer` locally).
pub const LOCAL_ISSUER: &str = "https://auth.connector.local/";
/// Their audience (the template's `OperatorJwtAudience` locally).
pub const LOCAL_AUDIENCE: &str = "connector-operators";

/// Mints and verifies the local operator tokens.
#[derive(Clone)]
pub struct Authorizer {
    key: Vec<u8>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authorizer({})", self.issuer)
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer …`.
    #[error("no bearer token")]
    Missing,
    /// Not three base64url parts, or not JSON.
    #[error("the token is malformed")]
    Malformed,
    /// Not HS256 or a bad signature.
    #[error("the signature does not verify")]
    Signature,
    /// Wrong issuer or audience, or expired.
    #[error("the token's claims are refused: {0}")]
    Claims(&'static str),
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| TokenError::Malformed)
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Authorizer {
    /// A fresh random key for one stack.
    pub fn new() -> Self {
        Self {
            key: shared::crypto::random_hex(32).into_bytes(),
            issuer: LOCAL_ISSUER.into(),
            audience: LOCAL_AUDIENCE.into(),
        }
    }

    /// A token for `subject` with `claims`, valid for an hour.
    pub fn mint(&self, subject: &str, claims: &[(&str, &str)]) -> String {
        let mut body = serde_json::json!({
            "iss": self.issuer, "aud": self.audience, "sub": subject,
            "iat": now_s(), "exp": now_s() + 3600,
        });
        for (name, value) in claims {
            body[*name] = serde_json::Value::String((*value).to_owned());
        }
        self.sign(&body)
    }

    /// Signs any claims (tests make expired or foreign tokens with it).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64(claims.to_string().as_bytes());
        let signed = format!("{head}.{body}");
        let signature = shared::crypto::hmac_sha256(&self.key, signed.as_bytes());
        format!("{signed}.{}", b64(&signature))
    }

    /// The claims of a valid token, as API Gateway hands them to the function (strings).
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value =
            serde_json::from_slice(&unb64(head)?).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Signature);
        }
        let expected = shared::crypto::hmac_sha256(&self.key, format!("{head}.{body}").as_bytes());
        if !shared::crypto::secrets_equal(&unb64(signature)?, &expected) {
            return Err(TokenError::Signature);
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&unb64(body)?).map_err(|_| TokenError::Malformed)?;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(TokenError::Claims("issuer"));
        }
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == self.audience,
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(TokenError::Claims("audience"));
        }
        let expires = claims.get("exp").and_then(serde_json::Value::as_i64);
        if expires.is_none_or(|exp| exp <= now_s()) {
            return Err(TokenError::Claims("expired"));
        }
        Ok(claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect())
    }

    /// `handler` behind the authorizer: 401 without a valid bearer token (the function is never
    /// invoked), else the request with the token's claims in its authorizer context.
    pub fn guard(&self, handler: HttpFn) -> HttpFn {
        let authorizer = self.clone();
        Arc::new(move |mut request| {
            let handler = Arc::clone(&handler);
            let verified = bearer(&request).and_then(|token| authorizer.verify(token));
            Box::pin(async move {
                match verified {
                    Ok(claims) => {
                        let mut jwt =
                            aws_lambda_events::apigw::ApiGatewayRequestAuthorizerJwtDescription::default();
                        jwt.claims = claims;
                        let mut context =
                            aws_lambda_events::apigw::ApiGatewayRequestAuthorizer::default();
                        context.jwt = Some(jwt);
                        request.request_context.authorizer = Some(context);
                        handler(request).await
                    }
                    Err(error) => {
                        tracing::warn!(%error, "operator API request refused by the authorizer");
                        let mut response =
                            shared::lambda::http::text(401, r#"{"message":"Unauthorized"}"#);
                        response.headers.insert(
                            "content-type",
                            http::HeaderValue::from_static("application/json"),
                        );
                        response
                    }
                }
            })
        })
    }
}

impl Default for Authorizer {
    fn default() -> Self {
        Self::new()
    }
}

fn bearer(request: &aws_lambda_events::apigw::ApiGatewayV2httpRequest) -> Result<&str, TokenError> {
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(TokenError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_tampered_foreign_or_expired_ones_do_not() {
        let authorizer = Authorizer::new();
        let token = authorizer.mint("rep-1", &[("phone_number", "+447700900401")]);
        let claims = authorizer.verify(&token).expect("valid");
        assert_eq!(claims["phone_number"], "+447700900401");
        assert_eq!(Authorizer::new().verify(&token), Err(TokenError::Signature));
        let expired = authorizer.sign(&serde_json::json!({
            "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "exp": 1}));
        assert_eq!(
            authorizer.verify(&expired),
            Err(TokenError::Claims("expired"))
        );
        let foreign = authorizer.sign(&serde_json::json!({
            "iss": "https://elsewhere/", "aud": LOCAL_AUDIENCE, "exp": now_s() + 60}));
        assert_eq!(
            authorizer.verify(&foreign),
            Err(TokenError::Claims("issuer"))
        );
        assert_eq!(authorizer.verify("a.b"), Err(TokenError::Malformed));
    }
}
