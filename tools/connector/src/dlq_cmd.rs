//! `connector dlq list | show | redrive`: the dead-letter queues of a stack, their records
//! (redacted) and moving them back to the queue they came from once the cause is fixed.
//!
//! Records are read by receiving them with a short visibility timeout and handing them back at
//! once: a DLQ has no redrive policy of its own, so the extra receives cost nothing. A redriven
//! record is sent to its source queue first (FIFO: in its own message group, in the order the
//! DLQ gives them), and deleted from the DLQ only after the send succeeded; its deduplication id
//! names the DLQ message and this receive of it, so a rerun after a failed delete sends it again
//! (the consumers are idempotent) rather than losing it to SQS deduplication.

use crate::cli::{self, Args, format_age};
use crate::report::Report;
use crate::target::{QueueRef, Target, TargetOptions};
use crate::{AdminError, redact};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::Duration;

/// `connector dlq --help`.
pub const HELP: &str = "\
usage:
  connector dlq list [--stack NAME]
  connector dlq show <queue> [--limit N] [--stack NAME]
  connector dlq redrive <queue> (--all | --id ID | --older-than DURATION) [--stack NAME]

list     every dead-letter queue of the stack: depth (visible + in flight) and the oldest record's age
show     up to N records (default 10): id, receive count, age, who failed it and why, the body with
         phone numbers, text, captions and names redacted
redrive  moves records back to the queue the DLQ serves, after their cause is fixed: every record
         (--all), one (--id, the id `show` prints) or those older than DURATION (90s, 15m, 6h, 2d)

<queue> is the queue a DLQ serves (Outbound), the DLQ's label (Outbound-dlq), its logical id
(OutboundDLQ) or its URL. In a FIFO DLQ, records of a message group behind one not selected stay
where they are (SQS hands out a group's records in order); `redrive` says how many.";

/// `connector dlq list --help`.
pub const HELP_LIST: &str = "\
usage: connector dlq list [--stack NAME]

Every dead-letter queue of the stack with its depth (visible + in flight) and the age of its
oldest record (read from up to 100 records). Exit status 1 when any holds records.";

/// `connector dlq show --help`.
pub const HELP_SHOW: &str = "\
usage: connector dlq show <queue> [--limit N] [--stack NAME]

Up to N records (default 10, at most 100) of the DLQ: id, message group, receive count, age,
failed_by / failure_reason (set by the function that dead-lettered it) and the body, with phone
numbers, text, captions and names redacted. Records are handed back at once.";

/// `connector dlq redrive --help`.
pub const HELP_REDRIVE: &str = "\
usage: connector dlq redrive <queue> (--all | --id ID | --older-than DURATION) [--stack NAME]

Moves records back to the queue the DLQ serves: each is sent there (a FIFO record in its message
group, in order) and only then deleted from the DLQ. DURATION: 90s, 15m, 6h, 2d. Progress goes to
stderr. Exit status 1 when a send failed (those records stay in the DLQ) or --id was not found.";

/// How many records `list` and `health` read to find the oldest.
const PEEK_LIMIT: usize = 100;
/// Seconds a record read by `show` / `list` stays hidden before it is handed back.
const PEEK_VISIBILITY: i32 = 5;
/// Seconds a record being redriven stays hidden (a send and a delete).
const REDRIVE_VISIBILITY: i32 = 120;

/// Which records to redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every record.
    All,
    /// The record with this message id.
    Id(String),
    /// Records older than this.
    OlderThan(Duration),
}

/// A parsed `dlq` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqCommand {
    /// `dlq list`.
    List(TargetOptions),
    /// `dlq show`.
    Show {
        /// Where.
        target: TargetOptions,
        /// Which DLQ.
        queue: String,
        /// How many records.
        limit: usize,
    },
    /// `dlq redrive`.
    Redrive {
        /// Where.
        target: TargetOptions,
        /// Which DLQ.
        queue: String,
        /// Which records.
        selection: Selection,
    },
}

/// The help text for `dlq [WORD]`.
pub fn help(words: &[String]) -> &'static str {
    match words.first().map(String::as_str) {
        Some("list") => HELP_LIST,
        Some("show") => HELP_SHOW,
        Some("redrive") => HELP_REDRIVE,
        _ => HELP,
    }
}

fn usage(message: impl Into<String>) -> AdminError {
    AdminError::Usage(message.into())
}

/// Parses the arguments after `dlq`.
pub fn parse(args: &[String]) -> Result<DlqCommand, AdminError> {
    let parsed: Args = cli::parse(
        args,
        &["--all"],
        &["--stack", "--limit", "--id", "--older-than"],
    )?;
    let target = TargetOptions {
        stack: parsed.value("--stack").map(str::to_owned),
    };
    let words: Vec<&str> = parsed.positional.iter().map(String::as_str).collect();
    let only = |allowed: &[&str]| {
        ["--all", "--limit", "--id", "--older-than"]
            .iter()
            .filter(|o| !allowed.contains(o))
            .find(|o| parsed.flag(o))
            .map_or(Ok(()), |o| Err(usage(format!("{o} does not apply here"))))
    };
    match words.as_slice() {
        ["list"] => {
            only(&[])?;
            Ok(DlqCommand::List(target))
        }
        ["show", queue] => {
            only(&["--limit"])?;
            let limit = match parsed.value("--limit") {
                None => 10,
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=PEEK_LIMIT).contains(n))
                    .ok_or_else(|| usage(format!("--limit takes 1 to {PEEK_LIMIT}, not {n}")))?,
            };
            Ok(DlqCommand::Show {
                target,
                queue: (*queue).to_owned(),
                limit,
            })
        }
        ["redrive", queue] => {
            only(&["--all", "--id", "--older-than"])?;
            let selection = match (
                parsed.flag("--all"),
                parsed.value("--id"),
                parsed.value("--older-than"),
            ) {
                (true, None, None) => Selection::All,
                (false, Some(id), None) => Selection::Id(id.to_owned()),
                (false, None, Some(age)) => {
                    Selection::OlderThan(cli::parse_duration(age).ok_or_else(|| {
                        usage(format!("--older-than {age}: write 90s, 15m, 6h or 2d"))
                    })?)
                }
                _ => {
                    return Err(usage(
                        "redrive takes one of --all, --id ID, --older-than DURATION",
                    ));
                }
            };
            Ok(DlqCommand::Redrive {
                target,
                queue: (*queue).to_owned(),
                selection,
            })
        }
        _ => Err(usage(format!("unknown command: dlq {}", words.join(" ")))),
    }
}

fn aws_error(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> AdminError {
    AdminError::Aws {
        what: what.to_owned(),
        source: Box::new(error),
    }
}

/// A queue's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Visible.
    pub visible: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Delayed.
    pub delayed: u64,
}

/// The counts SQS keeps for `queue`.
pub async fn depth(target: &Target, queue: &QueueRef) -> Result<Depth, AdminError> {
    use QueueAttributeName as A;
    let attributes = target
        .sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| aws_error(&format!("reading {}", queue.label), e))?
        .attributes
        .unwrap_or_default();
    let count = |name: A| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: count(A::ApproximateNumberOfMessages),
        in_flight: count(A::ApproximateNumberOfMessagesNotVisible),
        delayed: count(A::ApproximateNumberOfMessagesDelayed),
    })
}

/// Receives up to `limit` distinct records of `queue`, hidden for `visibility` seconds.
async fn receive(
    target: &Target,
    queue: &QueueRef,
    limit: usize,
    visibility: i32,
) -> Result<Vec<Message>, AdminError> {
    let mut seen = BTreeSet::new();
    let mut messages = Vec::new();
    while messages.len() < limit {
        let batch = target
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(i32::try_from((limit - messages.len()).min(10)).unwrap_or(10))
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_error(&format!("receiving from {}", queue.label), e))?
            .messages
            .unwrap_or_default();
        let fresh: Vec<Message> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        messages.extend(fresh);
    }
    Ok(messages)
}

/// Makes `messages` visible again at once.
async fn hand_back(target: &Target, queue: &QueueRef, messages: &[Message]) {
    for message in messages {
        if let Some(handle) = &message.receipt_handle {
            // A failure only leaves the record hidden until its short timeout ends.
            let _ = target
                .sqs
                .change_message_visibility()
                .queue_url(&queue.url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }
}

fn system(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value.as_deref())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long `message` has been on its queue.
fn age(message: &Message) -> Option<Duration> {
    let sent: u64 = system(message, MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()?;
    Some(Duration::from_millis(now_ms().saturating_sub(sent)))
}

/// The age of the oldest record among up to 100 read (handed back at once); `None` when empty.
pub async fn oldest_age(target: &Target, queue: &QueueRef) -> Result<Option<Duration>, AdminError> {
    let messages = receive(target, queue, PEEK_LIMIT, PEEK_VISIBILITY).await?;
    hand_back(target, queue, &messages).await;
    Ok(messages.iter().filter_map(age).max())
}

/// `dlq list`.
pub async fn list(target: &Target) -> Result<Report, AdminError> {
    let mut report = Report::new();
    let dlqs: Vec<QueueRef> = target
        .queues()
        .await?
        .into_iter()
        .filter(QueueRef::is_dlq)
        .collect();
    if dlqs.is_empty() {
        report.problem("no dead-letter queues found: check --stack and the AWS environment");
        return Ok(report);
    }
    report.line(format!(
        "{:<22} {:>7} {:>9}  OLDEST",
        "DLQ", "DEPTH", "IN FLIGHT"
    ));
    let mut holding = 0;
    for dlq in &dlqs {
        let depth = depth(target, dlq).await?;
        let oldest = match depth.visible {
            0 => None,
            _ => oldest_age(target, dlq).await?,
        };
        if depth.visible + depth.in_flight > 0 {
            holding += 1;
        }
        report.line(format!(
            "{:<22} {:>7} {:>9}  {}",
            dlq.label,
            depth.visible + depth.in_flight,
            depth.in_flight,
            oldest.map_or_else(|| "-".to_owned(), format_age)
        ));
    }
    if holding > 0 {
        report.problem(format!(
            "{holding} dead-letter queue(s) hold records: `connector dlq show <queue>`"
        ));
    }
    Ok(report)
}

/// `dlq show`.
pub async fn show(target: &Target, queue: &str, limit: usize) -> Result<Report, AdminError> {
    let dlq = target.dlq(queue).await?;
    let depth = depth(target, &dlq).await?;
    let messages = receive(target, &dlq, limit, PEEK_VISIBILITY).await?;
    hand_back(target, &dlq, &messages).await;
    let mut report = Report::new();
    report.line(format!(
        "{}: {} record(s), showing {}",
        dlq.label,
        depth.visible + depth.in_flight,
        messages.len()
    ));
    for message in &messages {
        report.line(format!(
            "- id {}  receives {}  age {}{}",
            message.message_id.as_deref().unwrap_or("?"),
            system(message, MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or("?"),
            age(message).map_or_else(|| "?".to_owned(), format_age),
            system(message, MessageSystemAttributeName::MessageGroupId)
                .map(|g| format!("  group {}", redact::mask_numbers(g)))
                .unwrap_or_default(),
        ));
        if let Some(by) = attribute(message, "failed_by") {
            report.line(format!("  failed by: {by}"));
        }
        match attribute(message, "failure_reason") {
            Some(reason) => report.line(format!("  reason: {}", redact::mask_numbers(reason))),
            None => report.line(
                "  reason: none recorded (moved by the queue's redrive policy after its receives)",
            ),
        }
        report.line(format!(
            "  body: {}",
            redact::body(message.body.as_deref().unwrap_or_default())
        ));
    }
    Ok(report)
}

fn selected(message: &Message, selection: &Selection) -> bool {
    match selection {
        Selection::All => true,
        Selection::Id(id) => message.message_id.as_deref() == Some(id.as_str()),
        Selection::OlderThan(min) => age(message).is_some_and(|a| a > *min),
    }
}

/// Sends `message` to `source`, then deletes it from `dlq`.
async fn move_back(
    target: &Target,
    dlq: &QueueRef,
    source: &QueueRef,
    message: &Message,
) -> Result<(), AdminError> {
    let id = message.message_id.as_deref().unwrap_or_default();
    let mut send = target
        .sqs
        .send_message()
        .queue_url(&source.url)
        .message_body(message.body.clone().unwrap_or_default());
    if source.is_fifo() {
        let group = system(message, MessageSystemAttributeName::MessageGroupId)
            .unwrap_or("redriven")
            .to_owned();
        let receives =
            system(message, MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or("0");
        send = send
            .message_group_id(group)
            .message_deduplication_id(format!("rd-{id}-{receives}"));
    }
    send.send()
        .await
        .map_err(|e| aws_error(&format!("sending {id} to {}", source.label), e))?;
    target
        .sqs
        .delete_message()
        .queue_url(&dlq.url)
        .set_receipt_handle(message.receipt_handle.clone())
        .send()
        .await
        .map_err(|e| aws_error(&format!("deleting {id} from {}", dlq.label), e))?;
    Ok(())
}

/// `dlq redrive`.
pub async fn redrive(
    target: &Target,
    queue: &str,
    selection: &Selection,
) -> Result<Report, AdminError> {
    let dlq = target.dlq(queue).await?;
    let source = target.source_of(&dlq).await?;
    let total = {
        let d = depth(target, &dlq).await?;
        d.visible + d.in_flight
    };
    let mut report = Report::new();
    let (mut moved, mut skipped, mut failed) = (0u64, Vec::new(), 0u64);
    let mut seen = BTreeSet::new();
    let mut stderr = std::io::stderr();
    loop {
        let batch = receive(target, &dlq, 10, REDRIVE_VISIBILITY).await?;
        let fresh: Vec<Message> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            if !selected(&message, selection) {
                skipped.push(message);
                continue;
            }
            match move_back(target, &dlq, &source, &message).await {
                Ok(()) => moved += 1,
                Err(error) => {
                    failed += 1;
                    report.problem(format!("{:#}", anyhow::Error::from(error)));
                    skipped.push(message);
                }
            }
            if total > 20 {
                let _ = write!(stderr, "\rredriving {}: {moved}/{total}", dlq.label);
            }
        }
        if matches!(selection, Selection::Id(_)) && moved > 0 {
            break;
        }
    }
    if total > 20 {
        let _ = writeln!(stderr);
    }
    hand_back(target, &dlq, &skipped).await;
    let left = total.saturating_sub(moved);
    report.line(format!(
        "{}: {moved} record(s) sent back to {}, {left} left in the DLQ{}",
        dlq.label,
        source.label,
        if failed > 0 {
            format!(" ({failed} could not be sent)")
        } else {
            String::new()
        }
    ));
    if let Selection::Id(id) = selection
        && moved == 0
        && failed == 0
    {
        report.problem(format!(
            "no record {id} reached in {} (gone, or behind another record of its FIFO group)",
            dlq.label
        ));
    }
    Ok(report)
}

/// Runs a parsed `dlq` command.
pub async fn run(target: &Target, command: &DlqCommand) -> Result<Report, AdminError> {
    match command {
        DlqCommand::List(_) => list(target).await,
        DlqCommand::Show { queue, limit, .. } => show(target, queue, *limit).await,
        DlqCommand::Redrive {
            queue, selection, ..
        } => redrive(target, queue, selection).await,
    }
}

impl DlqCommand {
    /// Where it looks.
    pub fn target(&self) -> &TargetOptions {
        match self {
            Self::List(target) | Self::Show { target, .. } | Self::Redrive { target, .. } => target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn redrive_takes_exactly_one_selection_and_show_a_bounded_limit() {
        assert_eq!(
            parse(&args("redrive Outbound --older-than 2h --stack prod")).expect("parsed"),
            DlqCommand::Redrive {
                target: TargetOptions {
                    stack: Some("prod".into())
                },
                queue: "Outbound".into(),
                selection: Selection::OlderThan(Duration::from_secs(7_200)),
            }
        );
        assert!(parse(&args("redrive Outbound")).is_err());
        assert!(parse(&args("redrive Outbound --all --id x")).is_err());
        assert!(parse(&args("show Outbound --limit 0")).is_err());
        assert!(parse(&args("list --all")).is_err());
        assert!(matches!(
            parse(&args("show Inbound --limit 5")),
            Ok(DlqCommand::Show { limit: 5, .. })
        ));
    }
}
