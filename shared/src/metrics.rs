//! Business metrics as CloudWatch Embedded Metric Format (EMF): counts per outcome, written as one
//! JSON line per invocation and flow on stdout, which Lambda ships to CloudWatch Logs and
//! CloudWatch turns into metrics (no `PutMetricData` call, no extra latency).
//!
//! One line to call, anywhere inside an invocation:
//!
//! ```
//! use shared::metrics::{self, Outcome};
//! use shared::domain::outbound::MessageFlow;
//! metrics::count(MessageFlow::Review, Outcome::Sent, 1);
//! metrics::count_reason(MessageFlow::Review, Outcome::Failed, "131026", 1);
//! metrics::count_in("inbound", Outcome::Received, 1);
//! ```
//!
//! [`crate::lambda::function::invoke`] scopes every invocation ([`scope`]); the counts gathered
//! in it are written when it ends, one line per flow, with the dimensions `Function` (the binary)
//! and `Flow` (the flow's name), the namespace from `METRICS_NAMESPACE` (default
//! [`DEFAULT_NAMESPACE`]; the local stack sets it per function with [`with_namespace`]). Outside a scope (unit tests, the CLI) a count is dropped. A failure
//! reason becomes its own metric (`Failed.<reason>`): reasons are short codes (Graph error
//! codes, `opted_out`, `no_recipient`), never message text or numbers — no personal data may be
//! passed here, and the values written are only counts.

use crate::domain::outbound::MessageFlow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "OrangeLogicWhatsApp";

/// What happened, as a metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A webhook item accepted onto the inbound queue.
    Received,
    /// An inbound item routed to a destination (the flow is the destination).
    Routed,
    /// A message accepted by Graph.
    Sent,
    /// A message not sent because the recipient opted out.
    SuppressedOptOut,
    /// A message that failed for good (with a reason).
    Failed,
    /// An asset created in the DAM from WhatsApp media.
    AssetIngested,
    /// An alert queued for a person (review request, issue alert, rights-expiry digest).
    AlertSent,
}

impl Outcome {
    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Received => "Received",
            Self::Routed => "Routed",
            Self::Sent => "Sent",
            Self::SuppressedOptOut => "SuppressedOptOut",
            Self::Failed => "Failed",
            Self::AssetIngested => "AssetsIngested",
            Self::AlertSent => "AlertsSent",
        }
    }
}

/// The `Flow` dimension's value for `flow`.
pub fn flow_name(flow: MessageFlow) -> &'static str {
    match flow {
        MessageFlow::Conversation => "conversation",
        MessageFlow::OptOut => "opt-out",
        MessageFlow::Review => "review",
        MessageFlow::FieldIngest => "field-ingest",
        MessageFlow::RightsExpiry => "rights-expiry",
        MessageFlow::Campaign => "campaign",
        MessageFlow::Sharing => "sharing",
        MessageFlow::UgcIntake => "ugc-intake",
        MessageFlow::IssueAlert => "issue-alert",
    }
}

type Counts = BTreeMap<&'static str, BTreeMap<String, u64>>;

struct Invocation {
    function: &'static str,
    counts: Mutex<Counts>,
}

tokio::task_local! {
    static CURRENT: Arc<Invocation>;
    /// The namespace of the function running here when several share a process (the local stack).
    static NAMESPACE_HERE: String;
}

/// Where EMF lines go: stdout in Lambda, a test's buffer when one is installed.
pub type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();
static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Sends every line to `sink` instead of stdout (once per process; tests read what the in-process
/// stack emits). `false` when a sink was already installed.
pub fn set_sink(sink: Sink) -> bool {
    SINK.set(sink).is_ok()
}

/// Sets the namespace (from `METRICS_NAMESPACE` at cold start); the first call wins.
pub fn set_namespace(namespace: impl Into<String>) {
    let _ = NAMESPACE.set(namespace.into());
}

/// Runs `work` with `namespace` for its metrics: the local stack runs every function in one
/// process, each with the `METRICS_NAMESPACE` its template variables give it.
pub async fn with_namespace<F: std::future::Future>(namespace: String, work: F) -> F::Output {
    NAMESPACE_HERE.scope(namespace, work).await
}

fn namespace() -> String {
    NAMESPACE_HERE.try_with(Clone::clone).unwrap_or_else(|_| {
        NAMESPACE
            .get()
            .map_or(DEFAULT_NAMESPACE, String::as_str)
            .to_owned()
    })
}

fn add(flow: &'static str, metric: String, n: u64) {
    let _ = CURRENT.try_with(|invocation| {
        let mut counts = invocation
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *counts.entry(flow).or_default().entry(metric).or_default() += n;
    });
}

/// Counts `n` of `outcome` in `flow` for the current invocation.
pub fn count(flow: MessageFlow, outcome: Outcome, n: u64) {
    add(flow_name(flow), outcome.name().to_owned(), n);
}

/// Counts `n` of `outcome` under a `Flow` value that is not a [`MessageFlow`]: `inbound` at the
/// webhook (before any routing), a routing destination such as `delivery-status` or `unrouted`.
pub fn count_in(flow: &'static str, outcome: Outcome, n: u64) {
    add(flow, outcome.name().to_owned(), n);
}

/// Counts `n` of `outcome` with a short `reason` code (`Failed.131026`): both the plain metric and
/// the one per reason. `reason` must be a code, never text from a message or a person.
pub fn count_reason(flow: MessageFlow, outcome: Outcome, reason: &str, n: u64) {
    count(flow, outcome, n);
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    add(flow_name(flow), format!("{}.{reason}", outcome.name()), n);
}

/// The EMF lines for `counts`, stamped `timestamp_ms`.
fn lines(namespace: &str, function: &str, counts: &Counts, timestamp_ms: u64) -> Vec<String> {
    counts
        .iter()
        .filter(|(_, metrics)| !metrics.is_empty())
        .map(|(flow, metrics)| {
            let definitions: Vec<serde_json::Value> = metrics
                .keys()
                .map(|name| serde_json::json!({ "Name": name, "Unit": "Count" }))
                .collect();
            let mut line = serde_json::json!({
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [["Function", "Flow"]],
                        "Metrics": definitions,
                    }],
                },
                "Function": function,
                "Flow": flow,
            });
            for (name, value) in metrics {
                line[name.as_str()] = serde_json::json!(value);
            }
            line.to_string()
        })
        .collect()
}

fn emit(line: &str) {
    match SINK.get() {
        Some(sink) => sink(line),
        None => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Runs one invocation of `function` (its binary name) with a fresh set of counts, then writes
/// them (one line per flow counted; nothing when nothing was counted).
pub async fn scope<F: std::future::Future>(function: &'static str, work: F) -> F::Output {
    let invocation = Arc::new(Invocation {
        function,
        counts: Mutex::new(Counts::new()),
    });
    let output = CURRENT.scope(Arc::clone(&invocation), work).await;
    let counts = std::mem::take(
        &mut *invocation
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    for line in lines(&namespace(), invocation.function, &counts, now_ms) {
        emit(&line);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_one_invocation_become_one_emf_line_per_flow() {
        let mut counts = Counts::new();
        counts.entry("review").or_default().insert("Sent".into(), 3);
        counts
            .entry("review")
            .or_default()
            .insert("Failed.131026".into(), 1);
        counts
            .entry("field-ingest")
            .or_default()
            .insert("Sent".into(), 1);
        let lines = lines(
            DEFAULT_NAMESPACE,
            "send-whatsapp-message",
            &counts,
            1_700_000_000_000,
        );
        assert_eq!(lines.len(), 2);
        let review: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        assert_eq!(review["Flow"], "review");
        assert_eq!(review["Function"], "send-whatsapp-message");
        assert_eq!(review["Sent"], 3);
        assert_eq!(review["Failed.131026"], 1);
        let definition = &review["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(definition["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(
            definition["Dimensions"][0],
            serde_json::json!(["Function", "Flow"])
        );
        let names: Vec<&str> = definition["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["Failed.131026", "Sent"]);
    }

    #[tokio::test]
    async fn a_count_outside_an_invocation_is_dropped_and_reasons_keep_only_code_characters() {
        count(MessageFlow::Review, Outcome::Sent, 1);
        let invocation = Arc::new(Invocation {
            function: "f",
            counts: Mutex::new(Counts::new()),
        });
        CURRENT
            .scope(Arc::clone(&invocation), async {
                count_reason(MessageFlow::Review, Outcome::Failed, "131 026 +44", 2);
            })
            .await;
        let counts = invocation.counts.lock().expect("lock").clone();
        assert_eq!(counts["review"]["Failed"], 2);
        assert_eq!(counts["review"]["Failed.13102644"], 2);
    }
}
