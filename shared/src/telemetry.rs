//! JSON logs for CloudWatch, one line per event, filtered by `RUST_LOG` (default `info`).
//!
//! `RUST_LOG` takes a level (`warn`) or `target=level` pairs (`info,shared::flows=debug`): the
//! `Targets` filter, which needs no regular-expression engine in every function's package (the
//! `EnvFilter` of tracing-subscriber brings one, about a megabyte of each bootstrap).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `RUST_LOG` names; `info` when it is unset or unreadable.
pub fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON subscriber; call first in `main`. A second call is a no-op.
pub fn init() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time(); // CloudWatch stamps every line
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing::Level;

    #[test]
    fn rust_log_sets_the_level_and_per_target_levels_and_bad_input_means_info() {
        let warn = filter(Some("warn"));
        assert!(warn.would_enable("shared::flows", &Level::WARN));
        assert!(!warn.would_enable("shared::flows", &Level::INFO));
        let mixed = filter(Some("info,shared::flows=debug"));
        assert!(mixed.would_enable("shared::flows::review", &Level::DEBUG));
        assert!(!mixed.would_enable("aws_sdk_sqs", &Level::DEBUG));
        for unset_or_bad in [None, Some("=?=")] {
            let info = filter(unset_or_bad);
            assert!(info.would_enable("anything", &Level::INFO));
            assert!(!info.would_enable("anything", &Level::DEBUG));
        }
    }
}
