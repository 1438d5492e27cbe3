//! Reading an Orange Logic answer, in one place: the HTTP status, the body's format (JSON, XML,
//! an HTML login page) and the failures the API reports inside HTTP 200. The shapes and where each
//! comes from are in docs/orange-logic.md ("Answers and failures").

use super::error::{OrangeLogicError, SessionSign};
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// What an answer means for the call that got it.
#[derive(Debug)]
pub enum Outcome {
    /// The API's JSON, with no failure inside it.
    Json(Value),
    /// The token or session is gone: renew once and send again.
    Renew(SessionSign),
    /// Anything else.
    Failed(OrangeLogicError),
}

/// Reads an answer. `body` is the whole body (Orange Logic's answers are small documents).
pub fn read(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    if status.is_redirection() {
        return Outcome::Renew(SessionSign::Redirect);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Outcome::Renew(SessionSign::Status401);
    }
    if !status.is_success() {
        let retry_after = retry_after(headers, SystemTime::now());
        return Outcome::Failed(match status.as_u16() {
            403 => OrangeLogicError::Forbidden,
            404 => OrangeLogicError::NotFound,
            429 => OrangeLogicError::RateLimited { retry_after },
            s if s >= 500 => OrangeLogicError::Server {
                status: s,
                retry_after,
            },
            s => OrangeLogicError::Client { status: s },
        });
    }
    match sniff(headers, body) {
        Format::Html => return Outcome::Renew(SessionSign::HtmlPage),
        Format::Xml => {
            return Outcome::Failed(OrangeLogicError::Xml {
                code: xml_code(body),
            });
        }
        Format::Json => {}
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        // serde_json's message names a line and column, never the text.
        Err(e) => return Outcome::Failed(OrangeLogicError::Decode(format!("not JSON: {e}"))),
    };
    match failure_inside(&json) {
        Some(error) => Outcome::Failed(error),
        None => Outcome::Json(json),
    }
}

enum Format {
    Json,
    Xml,
    Html,
}

fn sniff(headers: &HeaderMap, body: &[u8]) -> Format {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let start: Vec<u8> = body
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace() || *b == 0xEF || *b == 0xBB || *b == 0xBF)
        .take(64)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let html = content_type.contains("html")
        || start.starts_with(b"<!doctype html")
        || start.starts_with(b"<html")
        || (start.starts_with(b"<!--") && body_mentions_html(body));
    if html {
        Format::Html
    } else if content_type.contains("xml") || start.starts_with(b"<") {
        Format::Xml
    } else {
        Format::Json
    }
}

fn body_mentions_html(body: &[u8]) -> bool {
    body.windows(5)
        .take(4096)
        .any(|w| w.eq_ignore_ascii_case(b"<html"))
}

/// The first `<Code>` or `<ErrorCode>` of an XML answer: enough to name what the DAM said.
fn xml_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    ["<Code>", "<ErrorCode>"].iter().find_map(|open| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find('<')? + start;
        let code = text[start..end].trim();
        (!code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .then(|| code.to_owned())
    })
}

fn is_success_code(code: &str) -> bool {
    code.eq_ignore_ascii_case("SUCCESS")
}

fn code_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(code) => Some(code),
        Value::Object(map) => map
            .get("Code")
            .and_then(Value::as_str)
            .or_else(|| map.get("Result").and_then(code_of)),
        _ => None,
    }
}

fn to_error(code: &str) -> OrangeLogicError {
    if code.eq_ignore_ascii_case("RECORD_NOT_FOUND") {
        OrangeLogicError::RecordNotFound
    } else if code.eq_ignore_ascii_case("OL_ERR_001_NOTFOUND") {
        OrangeLogicError::NotFound
    } else {
        OrangeLogicError::Failed {
            code: machine_code(code),
        }
    }
}

/// A code as the DAM sent it when it looks like a machine code, else a placeholder (a code field
/// holding prose would otherwise carry text into logs).
fn machine_code(code: &str) -> String {
    let code = code.trim();
    if !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        code.to_owned()
    } else {
        "UNREADABLE_CODE".into()
    }
}

fn error_list_len(value: Option<&Value>) -> usize {
    match value {
        Some(Value::Array(items)) => items.len(),
        Some(Value::Object(map)) if !map.is_empty() => map
            .get("ErrorDetails")
            .map_or(1, |d| d.as_array().map_or(1, Vec::len)),
        Some(Value::String(s)) if !s.is_empty() => 1,
        _ => 0,
    }
}

/// The failure an HTTP 200 body reports, if any: `APIResponse.Code` (legacy), a `/webapi`
/// `ErrorCode`, `Response.Code` (`RECORD_NOT_FOUND`), a non-empty `ErrorList`, parameters listed in
/// `RequestInterpretation.IgnoredParameters`.
pub fn failure_inside(json: &Value) -> Option<OrangeLogicError> {
    if let Some(code) = json
        .get("APIResponse")
        .and_then(|r| r.get("Code"))
        .and_then(Value::as_str)
        && !is_success_code(code)
    {
        return Some(to_error(code));
    }
    if let Some(code) = json.get("ErrorCode").and_then(Value::as_str) {
        return Some(to_error(code));
    }
    let response = json.get("Response");
    if let Some(code) = response.and_then(|r| r.get("Code")).and_then(Value::as_str)
        && !is_success_code(code)
    {
        return Some(to_error(code));
    }
    let errors = error_list_len(response.and_then(|r| r.get("ErrorList")))
        + error_list_len(json.get("ErrorList"));
    if errors > 0 {
        return Some(OrangeLogicError::Failed {
            code: "ERROR_LIST".into(),
        });
    }
    if let Some(ignored) = json
        .get("RequestInterpretation")
        .and_then(|r| r.get("IgnoredParameters"))
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
    {
        // A misspelt field name is silently ignored by Orange Logic: make it loud.
        return Some(OrangeLogicError::IgnoredParameters {
            names: ignored
                .iter()
                .map(|name| {
                    name.as_str()
                        .or_else(|| name.get("Name").and_then(Value::as_str))
                        .map_or_else(|| "?".to_owned(), str::to_owned)
                })
                .collect(),
        });
    }
    None
}

/// How many records a write affected, or why it failed: a write succeeds only when the answer
/// says so (`RecordsAffected` as a count, a list of per-record results, or one result; or the
/// created record's `RecordID`).
pub fn records_affected(json: &Value) -> Result<usize, OrangeLogicError> {
    let response = json.get("Response").unwrap_or(json);
    let affected = response
        .get("RecordsAffected")
        .or_else(|| json.get("RecordsAffected"));
    let entries: Vec<&Value> = match affected {
        None | Some(Value::Null) => {
            return if response.get("RecordID").and_then(Value::as_str).is_some() {
                Ok(1)
            } else {
                Err(OrangeLogicError::NotAffected)
            };
        }
        Some(Value::Number(n)) => {
            return match n.as_u64() {
                Some(0) | None => Err(OrangeLogicError::NotAffected),
                Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            };
        }
        Some(Value::String(n)) => {
            return match n.trim().parse::<usize>() {
                Ok(0) | Err(_) => Err(OrangeLogicError::NotAffected),
                Ok(n) => Ok(n),
            };
        }
        Some(Value::Array(entries)) => entries.iter().collect(),
        Some(entry) => vec![entry],
    };
    let mut failed = 0;
    let mut first_code = None;
    let mut details = 0;
    for entry in &entries {
        let code = code_of(entry).unwrap_or("SUCCESS");
        details += error_list_len(entry.get("ErrorList"))
            + error_list_len(entry.get("Result").and_then(|r| r.get("ErrorList")));
        if !is_success_code(code) {
            failed += 1;
            first_code.get_or_insert_with(|| machine_code(code));
        }
    }
    match first_code {
        Some(code) if code.eq_ignore_ascii_case("RECORD_NOT_FOUND") && failed == entries.len() => {
            Err(OrangeLogicError::RecordNotFound)
        }
        Some(code) => Err(OrangeLogicError::WriteFailed {
            code,
            records: entries.len(),
            failed,
            details,
        }),
        None if entries.is_empty() => Err(OrangeLogicError::NotAffected),
        None => Ok(entries.len()),
    }
}

/// `Retry-After` in either form: delay-seconds or an HTTP date (relative to `now`; a date in the
/// past means "now").
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP requires senders to use.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let broken = jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", value).ok()?;
    let civil = broken.to_datetime().ok()?;
    let timestamp = civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    let seconds = u64::try_from(timestamp.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    fn json_answer(body: Value) -> Outcome {
        read(
            StatusCode::OK,
            &headers(&[("content-type", "application/json")]),
            body.to_string().as_bytes(),
        )
    }

    #[test]
    fn failures_inside_http_200_are_recognised() {
        let legacy = json!({"APIResponse":{"Code":"ERROR","Message":"no such folder"}});
        assert!(matches!(
            failure_inside(&legacy),
            Some(OrangeLogicError::Failed { code }) if code == "ERROR"
        ));
        let webapi = json!({"Message":"gone","ErrorCode":"OL_ERR_003_REMOVED"});
        assert!(failure_inside(&webapi).is_some());
        let not_found = json!({"Response":{"Code":"RECORD_NOT_FOUND","Message":"No record"}});
        assert!(matches!(
            failure_inside(&not_found),
            Some(OrangeLogicError::RecordNotFound)
        ));
        let listed = json!({"Response":{"ErrorList":[{"ErrorDetails":"Field X is read-only"}]}});
        assert!(failure_inside(&listed).is_some());
        let ok = json!({"APIResponse":{"Code":"SUCCESS"}});
        assert!(failure_inside(&ok).is_none());
    }

    #[test]
    fn ignored_parameters_are_a_configuration_error_naming_them() {
        let body = json!({"RequestInterpretation":{"IgnoredParameters":["Custom.Campain:"]},
                          "Response":{"RecordsAffected":[{"Result":{"Code":"SUCCESS"}}]}});
        match failure_inside(&body) {
            Some(OrangeLogicError::IgnoredParameters { names }) => {
                assert_eq!(names, ["Custom.Campain:"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_message_never_reaches_the_error_text() {
        let body = json!({"APIResponse":{"Code":"value Approved by +15551234567 refused",
                                         "Message":"comment text: meet at 5"}});
        let text = failure_inside(&body).expect("failure").to_string();
        assert!(
            !text.contains("15551234567") && !text.contains("meet at"),
            "{text}"
        );
    }

    #[test]
    fn a_write_succeeds_only_when_a_record_was_affected() {
        let one = json!({"Response":{"RecordsAffected":[{"RecordID":"2S1","Result":{"Code":"SUCCESS"}}]}});
        assert_eq!(records_affected(&one).expect("ok"), 1);
        assert_eq!(
            records_affected(&json!({"Response":{"RecordsAffected":2}})).expect("count"),
            2
        );
        assert_eq!(
            records_affected(&json!({"Response":{"RecordID":"2S9"}})).expect("created"),
            1
        );
        for nothing in [
            json!({"Response":{"RecordsAffected":[]}}),
            json!({"Response":{"RecordsAffected":0}}),
            json!({"Response":{}}),
            json!({}),
        ] {
            assert!(
                matches!(
                    records_affected(&nothing),
                    Err(OrangeLogicError::NotAffected)
                ),
                "{nothing}"
            );
        }
    }

    #[test]
    fn a_per_record_update_failure_is_a_typed_failure_with_its_details_counted() {
        let failed = json!({"Response":{"RecordsAffected":[
            {"RecordID":"2S1","Result":{"Code":"UPDATE_FAILED",
                                        "ErrorList":[{"ErrorDetails":"value not allowed"}]}}]}});
        match records_affected(&failed) {
            Err(OrangeLogicError::WriteFailed {
                code,
                records,
                failed,
                details,
            }) => assert_eq!(
                (code.as_str(), records, failed, details),
                ("UPDATE_FAILED", 1, 1, 1)
            ),
            other => panic!("{other:?}"),
        }
        // KALT's XML shape as JSON: one result object.
        let single = json!({"Response":{"RecordsAffected":{"Result":{"Code":"UPDATE_FAILED"}}}});
        assert!(matches!(
            records_affected(&single),
            Err(OrangeLogicError::WriteFailed { .. })
        ));
        let missing = json!({"Response":{"RecordsAffected":[{"Code":"RECORD_NOT_FOUND"}]}});
        assert!(matches!(
            records_affected(&missing),
            Err(OrangeLogicError::RecordNotFound)
        ));
    }

    #[test]
    fn an_html_page_inside_a_200_or_a_redirect_means_the_session_is_gone() {
        let page = b"<!DOCTYPE html><html><body><form id=\"login\"></form></body></html>";
        assert!(matches!(
            read(
                StatusCode::OK,
                &headers(&[("content-type", "text/html")]),
                page
            ),
            Outcome::Renew(SessionSign::HtmlPage)
        ));
        assert!(matches!(
            read(
                StatusCode::OK,
                &headers(&[]),
                b"  <html><title>Sign in</title></html>"
            ),
            Outcome::Renew(SessionSign::HtmlPage)
        ));
        assert!(matches!(
            read(StatusCode::FOUND, &headers(&[("location", "/Login")]), b""),
            Outcome::Renew(SessionSign::Redirect)
        ));
        assert!(matches!(
            read(StatusCode::UNAUTHORIZED, &headers(&[]), b""),
            Outcome::Renew(SessionSign::Status401)
        ));
    }

    #[test]
    fn an_html_maintenance_page_is_a_retryable_failure_after_renewal() {
        // The page itself asks for a renewal; the client turns a second one into SessionLost,
        // which is retryable (see error.rs).
        let maintenance = b"<html><h1>Down for maintenance</h1></html>";
        assert!(matches!(
            read(StatusCode::OK, &headers(&[]), maintenance),
            Outcome::Renew(SessionSign::HtmlPage)
        ));
    }

    #[test]
    fn an_xml_answer_is_reported_with_its_code() {
        let xml = b"<?xml version=\"1.0\"?><Response><APIResponse><Code>SUCCESS</Code></APIResponse></Response>";
        match read(
            StatusCode::OK,
            &headers(&[("content-type", "application/xml")]),
            xml,
        ) {
            Outcome::Failed(OrangeLogicError::Xml { code }) => {
                assert_eq!(code.as_deref(), Some("SUCCESS"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_retryable_decode_error() {
        match json_answer(json!("x")) {
            Outcome::Json(_) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(StatusCode::OK, &headers(&[]), b"{truncated"),
            Outcome::Failed(OrangeLogicError::Decode(_))
        ));
    }

    #[test]
    fn statuses_map_to_their_classes() {
        let status = |code: u16| {
            read(
                StatusCode::from_u16(code).expect("status"),
                &headers(&[("retry-after", "7")]),
                b"",
            )
        };
        assert!(matches!(
            status(429),
            Outcome::Failed(OrangeLogicError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            status(503),
            Outcome::Failed(OrangeLogicError::Server {
                status: 503,
                retry_after: Some(_)
            })
        ));
        assert!(matches!(
            status(403),
            Outcome::Failed(OrangeLogicError::Forbidden)
        ));
        assert!(matches!(
            status(404),
            Outcome::Failed(OrangeLogicError::NotFound)
        ));
        assert!(matches!(
            status(413),
            Outcome::Failed(OrangeLogicError::Client { status: 413 })
        ));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "120")]), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]),
                now
            ),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]),
                now
            ),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }
}
