//! The error taxonomy: every error the connector raises says whether trying again can help.

/// Implemented by every error type that crosses a port or an edge.
pub trait Retryable {
    /// `true` when the same work may succeed later (throttling, timeouts, 5xx); `false` when it never will.
    fn is_retryable(&self) -> bool;
}

/// Renders an error and its whole `source()` chain on one line, for the single log line at an edge.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_lists_every_cause() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&err), "outer: inner");
    }
}
