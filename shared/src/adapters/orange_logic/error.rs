//! What can go wrong talking to Orange Logic, classified for retries.
//!
//! Only input that can never succeed is permanent. Authentication failures, undecodable answers,
//! throttling, 5xx and timeouts are retryable, so the work goes back to its queue (and, after the
//! queue's receive count, to its DLQ with the reason) instead of being acknowledged and lost. No
//! variant carries a URL, a query string, a field value or a message text written by the DAM (which
//! may echo values back): only status codes, the DAM's machine codes, field and setting names.

use crate::error::Retryable;
use std::time::Duration;

/// How an answer said that the session or token is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSign {
    /// HTTP 401.
    Status401,
    /// An HTML page (a login page) instead of the API's answer.
    HtmlPage,
    /// A redirect (to a login page).
    Redirect,
    /// The connection closed while an upload's file was still being sent: the server refused the
    /// upload before reading it, and without `Expect: 100-continue` (hyper sends none) the
    /// refusal itself (most often a 401) is lost with the connection.
    UploadCut,
}

impl std::fmt::Display for SessionSign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Status401 => "HTTP 401",
            Self::HtmlPage => "an HTML login page",
            Self::Redirect => "a redirect to a login page",
            Self::UploadCut => "an upload refused before its file was read",
        })
    }
}

/// Why a search stopped before its last page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchCut {
    /// `dam.search.page_cap` pages were read.
    PageCap,
    /// The invocation's remaining time does not fit another page.
    OutOfTime,
}

impl std::fmt::Display for SearchCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PageCap => "the page cap (dam.search.page_cap) was reached",
            Self::OutOfTime => "the invocation's remaining time does not fit another page",
        })
    }
}

/// An Orange Logic call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum OrangeLogicError {
    /// No answer: connection refused, reset, timed out. The error carries no URL.
    #[error("Orange Logic could not be reached")]
    Transport(#[source] reqwest::Error),
    /// The client could not be made: no TLS settings (no system root certificate).
    #[error("no HTTPS client for Orange Logic")]
    TlsSetup(#[source] crate::crypto::TlsSetupError),
    /// The token endpoint refused the client credentials.
    #[error("Orange Logic refused the client credentials (HTTP {status})")]
    AuthRejected {
        /// HTTP status of the token endpoint.
        status: u16,
    },
    /// 401 even with a freshly issued token (or with the static bearer token).
    #[error("Orange Logic answered 401 Unauthorized with a fresh token")]
    Unauthorized,
    /// The session was gone (a login page or a redirect to one) even after a renewal.
    #[error("Orange Logic answered {0} instead of the API's answer, even with a fresh token")]
    SessionLost(SessionSign),
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
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Another 4xx (bad request, payload too large).
    #[error("Orange Logic refused the request with HTTP {status}")]
    Client {
        /// The status.
        status: u16,
    },
    /// HTTP 200 whose body reports a failure (`APIResponse.Code`, `Response.Code`, `ErrorCode`,
    /// `ErrorList`): the DAM refused the input.
    #[error("Orange Logic reported a failure inside HTTP 200: {code}")]
    Failed {
        /// The DAM's code.
        code: String,
    },
    /// A write whose record the DAM did not find (`RECORD_NOT_FOUND`). Retryable: an asset
    /// uploaded in background mode may not exist yet; a deleted one ends in the DLQ.
    #[error("Orange Logic found no record to write (RECORD_NOT_FOUND)")]
    RecordNotFound,
    /// A write the DAM reported as failed per record (`RecordsAffected[]` with e.g. `UPDATE_FAILED`).
    #[error(
        "Orange Logic did not apply the write: {code} on {failed} of {records} record(s), {details} error detail(s)"
    )]
    WriteFailed {
        /// The first failing record's code.
        code: String,
        /// Records reported.
        records: usize,
        /// Records that failed.
        failed: usize,
        /// Entries in their `ErrorList`s.
        details: usize,
    },
    /// A write answered without saying that any record was affected.
    #[error("Orange Logic's answer to a write does not say that a record was affected")]
    NotAffected,
    /// Concurrent writers kept replacing an appended line.
    #[error("an appended line was replaced by concurrent writes {attempts} times")]
    AppendLost {
        /// Writes tried.
        attempts: u32,
    },
    /// Parameters the instance ignored: misspelt field names or keys; fix the configuration.
    #[error(
        "Orange Logic ignored the parameters {} (configuration: check dam.field_map and dam.datatable)",
        .names.join(", ")
    )]
    IgnoredParameters {
        /// The ignored parameter names (names only, never values).
        names: Vec<String>,
    },
    /// The instance answered XML although JSON was asked for.
    #[error(
        "Orange Logic answered XML although format=json was sent{}; the instance or a proxy drops the parameter: check ORANGE_LOGIC_BASE_URL points at the API host (docs/orange-logic.md, \"XML answers\")",
        .code.as_deref().map(|c| format!(" (code {c})")).unwrap_or_default()
    )]
    Xml {
        /// `Code` / `ErrorCode` found in the XML, if any.
        code: Option<String>,
    },
    /// The answer is not the JSON the client expects.
    #[error("Orange Logic's answer has an unexpected shape: {0}")]
    Decode(String),
    /// A setting does not fit this instance.
    #[error("Orange Logic configuration: {0}")]
    Configuration(String),
    /// A configured folder path does not exist (and `dam.folders.create_missing` is off).
    #[error("Orange Logic has no folder `{path}` (configuration: routing folders, dam.folders)")]
    UnknownFolder {
        /// The path as configured.
        path: String,
    },
    /// A retry or a `Retry-After` wait does not fit the invocation's remaining time.
    #[error(
        "the next attempt does not fit the invocation's remaining time; handed back to the queue"
    )]
    OutOfTime(#[source] Box<OrangeLogicError>),
    /// A search stopped before its last page.
    #[error("the search stopped after {pages} page(s): {reason}")]
    SearchCut {
        /// Why.
        reason: SearchCut,
        /// Pages read.
        pages: u32,
    },
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

impl OrangeLogicError {
    /// A transport error, stripped of its URL (reqwest puts the whole URL, query string included,
    /// into its error text).
    pub fn transport(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }

    /// Whether this is an authentication failure (raises the `dam_auth_failure` alarm).
    pub fn is_auth_failure(&self) -> bool {
        match self {
            Self::AuthRejected { status } => *status < 500 && *status != 429,
            Self::Unauthorized | Self::SessionLost(_) | Self::Forbidden => true,
            Self::OutOfTime(inner) => inner.is_auth_failure(),
            _ => false,
        }
    }

    /// The `Retry-After` the DAM asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Retryable for OrangeLogicError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_)
            | Self::AuthRejected { .. }
            | Self::Unauthorized
            | Self::SessionLost(_)
            | Self::Forbidden
            | Self::RateLimited { .. }
            | Self::Server { .. }
            | Self::RecordNotFound
            | Self::WriteFailed { .. }
            | Self::NotAffected
            | Self::AppendLost { .. }
            | Self::Xml { .. }
            | Self::Decode(_)
            | Self::OutOfTime(_)
            | Self::SearchCut { .. } => true,
            Self::NotFound
            | Self::Client { .. }
            | Self::Failed { .. }
            | Self::IgnoredParameters { .. }
            | Self::Configuration(_)
            | Self::TlsSetup(_)
            | Self::UnknownFolder { .. }
            | Self::MediaTooLarge { .. }
            | Self::Media(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_server_errors_and_timeouts_are_retryable() {
        assert!(OrangeLogicError::RateLimited { retry_after: None }.is_retryable());
        assert!(
            OrangeLogicError::Server {
                status: 503,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(OrangeLogicError::AuthRejected { status: 502 }.is_retryable());
        let out_of_time = OrangeLogicError::OutOfTime(Box::new(OrangeLogicError::RateLimited {
            retry_after: Some(Duration::from_secs(90)),
        }));
        assert!(out_of_time.is_retryable());
    }

    #[test]
    fn authentication_failures_are_retryable_and_raise_the_alarm() {
        for error in [
            OrangeLogicError::AuthRejected { status: 401 },
            OrangeLogicError::Unauthorized,
            OrangeLogicError::SessionLost(SessionSign::HtmlPage),
            OrangeLogicError::SessionLost(SessionSign::Redirect),
            OrangeLogicError::Forbidden,
        ] {
            assert!(error.is_retryable(), "{error}");
            assert!(error.is_auth_failure(), "{error}");
        }
        assert!(!OrangeLogicError::AuthRejected { status: 503 }.is_auth_failure());
        assert!(
            !OrangeLogicError::Server {
                status: 503,
                retry_after: None
            }
            .is_auth_failure()
        );
    }

    #[test]
    fn undecodable_answers_are_retryable() {
        assert!(OrangeLogicError::Xml { code: None }.is_retryable());
        assert!(OrangeLogicError::Decode("not JSON".into()).is_retryable());
    }

    #[test]
    fn failed_writes_go_back_to_the_queue() {
        assert!(OrangeLogicError::RecordNotFound.is_retryable());
        assert!(OrangeLogicError::NotAffected.is_retryable());
        assert!(
            OrangeLogicError::WriteFailed {
                code: "UPDATE_FAILED".into(),
                records: 1,
                failed: 1,
                details: 1
            }
            .is_retryable()
        );
    }

    #[test]
    fn input_that_can_never_succeed_is_permanent() {
        assert!(!OrangeLogicError::NotFound.is_retryable());
        assert!(!OrangeLogicError::Client { status: 413 }.is_retryable());
        assert!(
            !OrangeLogicError::Failed {
                code: "ERROR".into()
            }
            .is_retryable()
        );
        assert!(
            !OrangeLogicError::IgnoredParameters {
                names: vec!["Custom.Campain:".into()]
            }
            .is_retryable()
        );
        assert!(!OrangeLogicError::UnknownFolder { path: "A/B".into() }.is_retryable());
        assert!(!OrangeLogicError::MediaTooLarge { bytes: 2, limit: 1 }.is_retryable());
    }

    #[test]
    fn error_texts_name_the_setting_to_fix() {
        let xml = OrangeLogicError::Xml {
            code: Some("SUCCESS".into()),
        }
        .to_string();
        assert!(
            xml.contains("format=json") && xml.contains("ORANGE_LOGIC_BASE_URL"),
            "{xml}"
        );
        let folder = OrangeLogicError::UnknownFolder {
            path: "Projects/Bridge/Field".into(),
        }
        .to_string();
        assert!(folder.contains("Projects/Bridge/Field"), "{folder}");
        let ignored = OrangeLogicError::IgnoredParameters {
            names: vec!["Custom.Campain:".into()],
        }
        .to_string();
        assert!(
            ignored.contains("Custom.Campain:") && ignored.contains("dam.field_map"),
            "{ignored}"
        );
    }
}
