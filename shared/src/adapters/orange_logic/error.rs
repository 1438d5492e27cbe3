//! What can go wrong talking to Orange Logic, classified for retries.

use crate::error::Retryable;
use std::time::Duration;

/// An Orange Logic call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum OrangeLogicError {
    /// No answer: connection refused, reset, timed out.
    #[error("Orange Logic could not be reached")]
    Transport(#[source] reqwest::Error),
    /// The token endpoint refused the client credentials.
    #[error("Orange Logic refused the client credentials (HTTP {status})")]
    AuthRejected {
        /// HTTP status of the token endpoint.
        status: u16,
    },
    /// 401 even with a freshly issued token (or with the static bearer token).
    #[error("Orange Logic answered 401 Unauthorized with a fresh token")]
    Unauthorized,
    /// 403 that switching to a POST form body did not cure: permissions or SSL.
    #[error("Orange Logic answered 403 Forbidden")]
    Forbidden,
    /// 404: no such asset or endpoint.
    #[error("Orange Logic has no such record or endpoint (HTTP 404)")]
    NotFound,
    /// 429.
    #[error("Orange Logic is throttling the connector (HTTP 429)")]
    RateLimited {
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// 5xx; 503 means "not accepting API calls right now".
    #[error("Orange Logic failed with HTTP {status}")]
    Server {
        /// The status.
        status: u16,
    },
    /// Another 4xx (bad request, payload too large).
    #[error("Orange Logic refused the request with HTTP {status}")]
    Client {
        /// The status.
        status: u16,
    },
    /// HTTP 200 whose body reports a failure (`APIResponse.Code` or `ErrorCode`).
    #[error("Orange Logic reported a failure inside HTTP 200: {code}: {message}")]
    Failed {
        /// `APIResponse.Code` / `ErrorCode`.
        code: String,
        /// Its message, if any.
        message: String,
    },
    /// The answer is not the JSON the client expects.
    #[error("Orange Logic's answer has an unexpected shape: {0}")]
    Decode(String),
    /// The media is larger than a single upload may be.
    #[error("the media is {bytes} bytes, over the {limit}-byte single-upload limit")]
    MediaTooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The media to upload could not be opened.
    #[error("cannot open the media to upload")]
    Media(#[source] std::io::Error),
}

impl Retryable for OrangeLogicError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::RateLimited { .. } | Self::Server { .. } => true,
            Self::AuthRejected { status } => *status >= 500 || *status == 429,
            Self::Unauthorized
            | Self::Forbidden
            | Self::NotFound
            | Self::Client { .. }
            | Self::Failed { .. }
            | Self::Decode(_)
            | Self::MediaTooLarge { .. }
            | Self::Media(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_retryable_and_refusals_are_not() {
        assert!(OrangeLogicError::RateLimited { retry_after: None }.is_retryable());
        assert!(OrangeLogicError::Server { status: 503 }.is_retryable());
        assert!(OrangeLogicError::AuthRejected { status: 502 }.is_retryable());
        assert!(!OrangeLogicError::AuthRejected { status: 401 }.is_retryable());
        assert!(!OrangeLogicError::Unauthorized.is_retryable());
        assert!(!OrangeLogicError::Forbidden.is_retryable());
        assert!(
            !OrangeLogicError::Failed {
                code: "ERROR".into(),
                message: String::new()
            }
            .is_retryable()
        );
    }
}
