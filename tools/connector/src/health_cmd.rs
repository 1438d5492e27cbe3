//! `connector health`: one summary of a stack: every queue's depth, every DLQ's depth and oldest
//! record, the last rights-expiry scan and the DAM poll's watermark.

use crate::AdminError;
use crate::cli::format_age;
use crate::dlq_cmd::{depth, oldest_age};
use crate::report::Report;
use crate::target::{Target, TargetOptions};
use aws_sdk_dynamodb::types::AttributeValue;

/// `connector health --help`.
pub const HELP: &str = "\
usage: connector health [--stack NAME]

Queue depths (visible, in flight, delayed) of every queue, the depth and oldest record's age of
every dead-letter queue, the last rights-expiry scan (finished, or checkpointed mid-way) and the
DAM poll's watermark (the latest edit date already polled).
The age of the oldest message on a working queue is a CloudWatch metric only
(ApproximateAgeOfOldestMessage: the dashboard and the <Queue>AgeAlarm alarms show it); reading it
with a receive would count towards the queue's maxReceiveCount, so health never receives there.
Exit status 1 when a dead-letter queue holds records.";

/// A parsed `health` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCommand {
    /// Where.
    pub target: TargetOptions,
}

/// Parses the arguments after `health`.
pub fn parse(args: &[String]) -> Result<HealthCommand, AdminError> {
    let parsed = crate::cli::parse(args, &[], &["--stack"])?;
    if !parsed.positional.is_empty() {
        return Err(AdminError::Usage("health takes no words".into()));
    }
    Ok(HealthCommand {
        target: TargetOptions {
            stack: parsed.value("--stack").map(str::to_owned),
        },
    })
}

fn aws_error(what: String, error: impl std::error::Error + Send + Sync + 'static) -> AdminError {
    AdminError::Aws {
        what,
        source: Box::new(error),
    }
}

fn at(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

async fn get(
    target: &Target,
    table: &str,
    key: &[(&str, &str)],
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, AdminError> {
    let mut request = target
        .dynamodb
        .get_item()
        .table_name(table)
        .consistent_read(true);
    for (name, value) in key {
        request = request.key(*name, AttributeValue::S((*value).to_owned()));
    }
    request
        .send()
        .await
        .map(|o| o.item)
        .map_err(|e| aws_error(format!("reading {table}"), e))
}

/// `health`.
pub async fn health(target: &Target) -> Result<Report, AdminError> {
    let mut report = Report::new();
    let queues = target.queues().await?;
    if queues.is_empty() {
        report.problem("no queues found: check --stack and the AWS environment");
        return Ok(report);
    }
    report.line(format!(
        "{:<22} {:>7} {:>9} {:>7}",
        "QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED"
    ));
    for queue in queues.iter().filter(|q| !q.is_dlq()) {
        let d = depth(target, queue).await?;
        report.line(format!(
            "{:<22} {:>7} {:>9} {:>7}",
            queue.label, d.visible, d.in_flight, d.delayed
        ));
    }
    report.line(String::new());
    report.line(format!("{:<22} {:>7}  OLDEST", "DLQ", "DEPTH"));
    let mut holding = Vec::new();
    for dlq in queues.iter().filter(|q| q.is_dlq()) {
        let d = depth(target, dlq).await?;
        let total = d.visible + d.in_flight;
        let oldest = match d.visible {
            0 => None,
            _ => oldest_age(target, dlq).await?,
        };
        if total > 0 {
            holding.push(dlq.label.clone());
        }
        report.line(format!(
            "{:<22} {:>7}  {}",
            dlq.label,
            total,
            oldest.map_or_else(|| "-".to_owned(), format_age)
        ));
    }
    report.line(String::new());
    match target.table("EXPIRY_ALERTS_TABLE") {
        Ok(table) => {
            let scan = get(target, table, &[("pk", "cursor"), ("sk", "scan")]).await?;
            let number = |name: &str| {
                scan.as_ref()
                    .and_then(|i| i.get(name))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
            };
            let line = match (
                scan.as_ref().is_some_and(|i| i.contains_key("cursor")),
                number("saved_at_ms"),
                number("finished_at_ms"),
            ) {
                (true, saved, _) => format!(
                    "rights-expiry scan: unfinished, checkpointed{} (the next schedule resumes it)",
                    saved
                        .map(|ms| format!(" at {}", at(ms)))
                        .unwrap_or_default()
                ),
                (false, _, Some(ms)) => format!("rights-expiry scan: last finished {}", at(ms)),
                (false, _, None) => "rights-expiry scan: none recorded yet".to_owned(),
            };
            report.line(line);
        }
        Err(_) => report.line("rights-expiry scan: EXPIRY_ALERTS_TABLE unknown"),
    }
    match target.table("ASSET_STATE_TABLE") {
        Ok(table) => {
            let watermark = get(target, table, &[("pk", "poll#watermark")])
                .await?
                .and_then(|i| i.get("edited_at")?.as_s().ok().cloned());
            report.line(match watermark {
                Some(edited) => {
                    format!("DAM poll watermark: {edited} (UTC, the latest edit polled)")
                }
                None => "DAM poll watermark: none yet (no poll has finished)".to_owned(),
            });
        }
        Err(_) => report.line("DAM poll watermark: ASSET_STATE_TABLE unknown"),
    }
    if !holding.is_empty() {
        report.problem(format!(
            "dead letters in {}: `connector dlq show <queue>`",
            holding.join(", ")
        ));
    }
    Ok(report)
}

/// Runs a parsed `health` command.
pub async fn run(target: &Target, _command: &HealthCommand) -> Result<Report, AdminError> {
    health(target).await
}
