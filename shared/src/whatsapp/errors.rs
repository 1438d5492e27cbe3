//! Graph API errors, parsed from `{"error":{...}}` and classified by what the caller should do next.
//!
//! Classification is by `code` only (NOTES §5.2: never by HTTP status, subcode or title), except that
//! a 5xx without a Graph error body is a transient server failure.

use crate::error::Retryable;
use serde::Deserialize;
use std::time::Duration;

/// What a caller should do about a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: try the same request again, after `backoff` when Meta's guidance names one.
    Retryable {
        /// The pacing rule to apply before the next attempt.
        backoff: Backoff,
    },
    /// The 24-hour window is closed (131047): send an approved template instead.
    NeedsTemplate,
    /// The user stopped marketing messages (131050): do not send marketing again.
    OptedOut,
    /// The request, account or recipient is wrong; repeating it never helps.
    Permanent,
    /// The access token is expired or invalid (190, 0): renew it, then retry.
    Auth,
}

/// How long to wait before retrying a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Ordinary exponential backoff from one second.
    Exponential,
    /// Pair rate limit (131056): Meta's guidance is 4^attempt seconds for that recipient.
    PairRate,
    /// Wait at least this long (maintenance windows, marketing per-user limits, management limits).
    AtLeast(Duration),
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry), capped at one day.
    pub fn delay(self, attempt: u32) -> Duration {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        let exp = |base: u64| {
            base.checked_pow(attempt)
                .map_or(DAY, Duration::from_secs)
                .min(DAY)
        };
        match self {
            Self::Exponential => exp(2),
            Self::PairRate => exp(4),
            Self::AtLeast(min) => min.max(exp(2)).min(DAY.max(min)),
        }
    }
}

impl ErrorClass {
    /// Classifies a Graph error code (synchronous response or `failed` status webhook).
    pub fn of_code(code: i64) -> Self {
        let retry = |backoff| Self::Retryable { backoff };
        match code {
            0 | 190 => Self::Auth,
            131_047 => Self::NeedsTemplate,
            131_050 => Self::OptedOut,
            131_056 => retry(Backoff::PairRate),
            1 | 2 | 130_429 | 131_000 | 131_016 | 133_004 => retry(Backoff::Exponential),
            131_057 => retry(Backoff::AtLeast(Duration::from_secs(60))),
            4 | 80_007 | 131_048 => retry(Backoff::AtLeast(Duration::from_secs(300))),
            131_049 => retry(Backoff::AtLeast(Duration::from_secs(24 * 3600))),
            _ => Self::Permanent,
        }
    }

    /// `true` for [`ErrorClass::Retryable`].
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// The `error` object of a Graph API error response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GraphError {
    /// The error code everything is decided on.
    pub code: i64,
    /// `(#code) title`.
    #[serde(default)]
    pub message: String,
    /// `OAuthException` and friends.
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    /// Deprecated but still sent.
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// `details` and `messaging_product`; absent on token errors.
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    /// Meta's trace id, for support requests.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// `error.error_data`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorData {
    /// Human-readable detail, the most specific text Meta gives.
    #[serde(default)]
    pub details: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

impl GraphError {
    /// Parses an error response body; `None` when it is not Graph's error shape.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error)
    }

    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of_code(self.code)
    }
}

/// A request Graph answered with an error, or that never got a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Graph answered with its error shape.
    #[error("Graph API error {} (HTTP {status}): {}", .error.code, .error.message)]
    Graph {
        /// HTTP status of the response.
        status: u16,
        /// The parsed error (boxed: it is large and errors travel in `Result`s).
        error: Box<GraphError>,
    },
    /// A non-success status without Graph's error shape (a proxy, a 5xx page).
    #[error("HTTP {status} without a Graph error body")]
    Status {
        /// HTTP status of the response.
        status: u16,
    },
    /// Connection, TLS or timeout failure before an answer.
    #[error("the request to the Graph API failed")]
    Transport(#[source] reqwest::Error),
    /// The client could not be made: no TLS settings (no system root certificate).
    #[error("no HTTPS client for the Graph API")]
    TlsSetup(#[source] crate::crypto::TlsSetupError),
    /// A success status whose body is not what the endpoint returns.
    #[error("the Graph API answered {status} with an unexpected body")]
    UnexpectedBody {
        /// HTTP status of the response.
        status: u16,
        /// Why the body did not parse.
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Graph { error, .. } => error.class(),
            Self::Status { status } if *status >= 500 || *status == 429 => ErrorClass::Retryable {
                backoff: Backoff::Exponential,
            },
            Self::Status { status: 401 } => ErrorClass::Auth,
            Self::Status { .. } => ErrorClass::Permanent,
            // Timeouts and dropped connections: the request may not have reached Meta.
            Self::Transport(_) => ErrorClass::Retryable {
                backoff: Backoff::Exponential,
            },
            Self::UnexpectedBody { .. } | Self::TlsSetup(_) => ErrorClass::Permanent,
        }
    }

    /// The Graph error code, when Graph sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Graph { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Graph error body of the repository's fixtures (`fixtures/whatsapp/graph/`).
    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/whatsapp/graph/");
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_error_fixture_parses_and_lands_in_its_class() {
        let cases = [
            (
                "error-100-invalid-parameter.json",
                100,
                ErrorClass::Permanent,
            ),
            (
                "error-130429-throughput.json",
                130_429,
                ErrorClass::Retryable {
                    backoff: Backoff::Exponential,
                },
            ),
            (
                "error-131030-not-allowed-test-number.json",
                131_030,
                ErrorClass::Permanent,
            ),
            (
                "error-131056-pair-rate-limit.json",
                131_056,
                ErrorClass::Retryable {
                    backoff: Backoff::PairRate,
                },
            ),
            (
                "error-132001-template-missing.json",
                132_001,
                ErrorClass::Permanent,
            ),
            ("error-190-token-expired.json", 190, ErrorClass::Auth),
        ];
        for (file, code, class) in cases {
            let error = GraphError::from_body(&fixture(file)).expect(file);
            assert_eq!(error.code, code, "{file}");
            assert_eq!(error.class(), class, "{file}");
            assert!(error.fbtrace_id.is_some(), "{file}");
        }
    }

    #[test]
    fn window_and_opt_out_codes_have_their_own_classes() {
        assert_eq!(ErrorClass::of_code(131_047), ErrorClass::NeedsTemplate);
        assert_eq!(ErrorClass::of_code(131_050), ErrorClass::OptedOut);
        for permanent in [100, 131_026, 132_000, 132_001, 131_009, 368] {
            assert_eq!(
                ErrorClass::of_code(permanent),
                ErrorClass::Permanent,
                "{permanent}"
            );
        }
    }

    #[test]
    fn pair_rate_backoff_grows_as_powers_of_four() {
        let delays: Vec<u64> = (0..4)
            .map(|n| Backoff::PairRate.delay(n).as_secs())
            .collect();
        assert_eq!(delays, [1, 4, 16, 64]);
        assert_eq!(Backoff::PairRate.delay(40), Duration::from_secs(24 * 3600));
        assert_eq!(
            Backoff::AtLeast(Duration::from_secs(60)).delay(0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn bodiless_failures_are_classified_by_status() {
        assert!(ApiError::Status { status: 503 }.is_retryable());
        assert!(ApiError::Status { status: 429 }.is_retryable());
        assert!(!ApiError::Status { status: 400 }.is_retryable());
        assert_eq!(ApiError::Status { status: 401 }.class(), ErrorClass::Auth);
    }

    #[test]
    fn a_graph_code_wins_over_the_http_status() {
        let error =
            GraphError::from_body(&fixture("error-130429-throughput.json")).expect("parses");
        let api = ApiError::Graph {
            status: 400,
            error: Box::new(error),
        };
        assert!(api.is_retryable());
        assert_eq!(api.code(), Some(130_429));
        assert!(GraphError::from_body(b"<html>bad gateway</html>").is_none());
    }
}
