//! `connector sent <wamid | send key>`: what one sent message was about and how far it got, from
//! the one sender's tables (`SentMessagesTable` by wamid, `SendsTable` by send key). Prints the
//! flow, the subject (the asset, or the inbound message answered), the recipient's pseudonym and
//! the status history; never a phone number or a message text (none is stored there).

use crate::AdminError;
use crate::report::Report;
use crate::target::{Target, TargetOptions};
use aws_sdk_dynamodb::types::AttributeValue;
use shared::domain::outbound::{MessageFlow, SendKey};
use std::collections::HashMap;

/// `connector sent --help`.
pub const HELP: &str = "\
usage: connector sent <wamid | send key> [--stack NAME]

Looks up one sent message: by the message id Graph gave it (wamid.…, as in a status webhook or
the DAM's log), or by its send key (flow|subject|version|recipient, as `dlq show` prints it in a
record's key and as it travels in biz_opaque_callback_data). Prints the flow, the subject (asset
or inbound message), the version, the recipient's pseudonym, the business number, what was sent
(text, template, ...), the sender's outcome and every delivery status with its time.
Exit status 1 when nothing was sent under that id.";

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
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

fn flow_name(code: &str) -> String {
    match MessageFlow::from_code(code) {
        Some(flow) => format!("{flow:?} ({code})"),
        None => code.to_owned(),
    }
}

async fn get(target: &Target, table: &str, pk: &str) -> Result<Option<Item>, AdminError> {
    target
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map(|o| o.item)
        .map_err(|e| AdminError::Aws {
            what: format!("reading {table}"),
            source: Box::new(e),
        })
}

fn looks_like_send_key(id: &str) -> bool {
    id.contains('|') || id.starts_with("sha256:")
}

/// `sent <id>`.
pub async fn lookup(target: &Target, id: &str) -> Result<Report, AdminError> {
    let mut report = Report::new();
    let mut wamid = (!looks_like_send_key(id)).then(|| id.to_owned());
    if looks_like_send_key(id) {
        let sends = target.table("SENDS_TABLE")?;
        let Some(send) = get(target, sends, id).await? else {
            report.problem(format!("no send under key {id}"));
            return Ok(report);
        };
        report.line(format!("send key   {id}"));
        if let Some(key) = text(&send, "record")
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|r| serde_json::from_value::<SendKey>(r["key"].clone()).ok())
        {
            report.line(format!("flow       {}", flow_name(key.flow.code())));
            report.line(format!("subject    {}", key.subject));
            report.line(format!("version    {}", key.version));
            report.line(format!("recipient  {}", key.recipient));
        }
        report.line(format!(
            "outcome    {}{}",
            text(&send, "state").unwrap_or("?"),
            text(&send, "reason")
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
        wamid = text(&send, "message_id").map(str::to_owned);
        if wamid.is_none() {
            report.line("message    none: Graph never accepted it");
            return Ok(report);
        }
    }
    let Some(wamid) = wamid else {
        return Ok(report);
    };
    let sent_messages = target.table("SENT_MESSAGES_TABLE")?;
    let Some(item) = get(target, sent_messages, &wamid).await? else {
        report.problem(format!("no sent message {wamid}"));
        return Ok(report);
    };
    report.line(format!("message    {wamid}"));
    if !looks_like_send_key(id) {
        if let Some(key) = text(&item, "callback_key") {
            report.line(format!("send key   {key}"));
        }
        report.line(format!(
            "flow       {}",
            flow_name(text(&item, "flow").unwrap_or("?"))
        ));
        report.line(format!(
            "subject    {}",
            text(&item, "subject").unwrap_or("?")
        ));
        report.line(format!(
            "version    {}",
            text(&item, "version").unwrap_or("?")
        ));
        report.line(format!(
            "recipient  {}",
            text(&item, "recipient").unwrap_or("?")
        ));
    }
    report.line(format!(
        "from       {}",
        text(&item, "number").unwrap_or("?")
    ));
    report.line(format!("what       {}", text(&item, "what").unwrap_or("?")));
    if let Some(ms) = number(&item, "at_ms") {
        report.line(format!("accepted   {}", at(ms)));
    }
    report.line(format!(
        "state      {}",
        text(&item, "state").unwrap_or("?")
    ));
    if let Some(code) = number(&item, "error_code") {
        report.line(format!(
            "error      {code} {}",
            text(&item, "error_title").unwrap_or_default()
        ));
    }
    if let Some(category) = text(&item, "pricing_category") {
        report.line(format!("pricing    {category}"));
    }
    let history: Vec<String> = item
        .get("history")
        .and_then(|h| h.as_l().ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_m().ok())
        .map(|entry| {
            let state = entry
                .get("state")
                .and_then(|s| s.as_s().ok())
                .map_or("?", String::as_str);
            let when = entry
                .get("at_ms")
                .and_then(|n| n.as_n().ok())
                .and_then(|n| n.parse().ok())
                .map(at)
                .unwrap_or_default();
            format!("  {when}  {state}")
        })
        .collect();
    if history.is_empty() {
        report.line("history    no status yet");
    } else {
        report.line("history");
        report.lines.extend(history);
    }
    Ok(report)
}

/// A parsed `sent` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommand {
    /// Where.
    pub target: TargetOptions,
    /// The wamid or send key.
    pub id: String,
}

/// Parses the arguments after `sent`.
pub fn parse(args: &[String]) -> Result<SentCommand, AdminError> {
    let parsed = crate::cli::parse(args, &[], &["--stack"])?;
    match parsed.positional.as_slice() {
        [id] => Ok(SentCommand {
            target: TargetOptions {
                stack: parsed.value("--stack").map(str::to_owned),
            },
            id: id.clone(),
        }),
        _ => Err(AdminError::Usage("sent takes one wamid or send key".into())),
    }
}
