//! The sharing audit in DynamoDB (`SharingAuditTable`): one item per share, key `pk` = the send
//! key, with `day` (UTC `YYYY-MM-DD` of the request) and `requested_at_ms` as the `by-day` index's
//! keys for the date-range export. The identity attributes are written once (a conditional put);
//! the marks only ever add a first time (`if_not_exists`), so the record is append-only.

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::sending::DeliveryState;
use crate::domain::sharing::{AuditRecord, day_of};
use crate::ports::{SharingAudit, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The index by request day.
pub const BY_DAY_INDEX: &str = "by-day";

/// The most days one export covers (a year and a day).
pub const MAX_DAYS: i64 = 367;

/// The sharing audit table.
#[derive(Debug, Clone)]
pub struct DynamoSharingAudit {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoSharingAudit {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn day(&self, day: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_DAY_INDEX)
                .key_condition_expression("#d = :d")
                .expression_attribute_names("#d", "day")
                .expression_attribute_values(":d", s(day))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                records.push(record_of(item)?);
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(records),
            }
        }
    }
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn record_of(item: &Item) -> Result<AuditRecord, StoreError> {
    let required = |name: &str| {
        text(item, name).ok_or_else(|| StoreError::Rejected {
            reason: format!("an audit record without {name}"),
        })
    };
    Ok(AuditRecord {
        send_key: required("pk")?,
        asset: required("asset")?,
        version: required("version")?,
        rep: required("rep")?,
        rep_pseudonym: required("rep_pseudonym")?,
        recipient: required("recipient")?,
        requested_at_ms: number(item, "requested_at_ms").unwrap_or_default(),
        message_id: text(item, "message_id"),
        sent_at_ms: number(item, "sent_at_ms"),
        delivered_at_ms: number(item, "delivered_at_ms"),
        read_at_ms: number(item, "read_at_ms"),
    })
}

/// The days from `from` to `to`, both included; `None` when either is not a date or the range
/// is reversed or longer than [`MAX_DAYS`].
pub fn days(from: &str, to: &str) -> Option<Vec<String>> {
    let from: jiff::civil::Date = from.trim().parse().ok()?;
    let to: jiff::civil::Date = to.trim().parse().ok()?;
    if to < from {
        return None;
    }
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        if days.len() as i64 >= MAX_DAYS {
            return None;
        }
        days.push(day.to_string());
        day = day.tomorrow().ok()?;
    }
    Some(days)
}

impl SharingAudit for DynamoSharingAudit {
    async fn append(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&record.send_key))
            .item("day", s(day_of(record.requested_at_ms / 1000)))
            .item("requested_at_ms", n(record.requested_at_ms))
            .item("asset", s(&record.asset))
            .item("version", s(&record.version))
            .item("rep", s(&record.rep))
            .item("rep_pseudonym", s(&record.rep_pseudonym))
            .item("recipient", s(&record.recipient))
            .condition_expression("attribute_not_exists(pk)");
        match put.send().await {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(false),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn mark(
        &self,
        send_key: &str,
        message_id: &str,
        state: DeliveryState,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let fields: &[&str] = match state {
            DeliveryState::Accepted => &[],
            DeliveryState::Sent => &["sent_at_ms"],
            DeliveryState::Delivered => &["sent_at_ms", "delivered_at_ms"],
            // A read message was delivered; its delivered status may come late or never.
            DeliveryState::Read => &["sent_at_ms", "delivered_at_ms", "read_at_ms"],
            DeliveryState::Failed => &["failed_at_ms"],
        };
        let mut expression = vec!["message_id = if_not_exists(message_id, :m)".to_owned()];
        expression.extend(
            fields
                .iter()
                .map(|f| format!("{f} = if_not_exists({f}, :t)")),
        );
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(send_key))
            .update_expression(format!("SET {}", expression.join(", ")))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":m", s(message_id))
            .expression_attribute_values(":t", n(at_ms));
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(false),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn between(&self, from: &str, to: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let days = days(from, to).ok_or_else(|| StoreError::Rejected {
            reason: format!("`{from}` to `{to}` is not a range of at most {MAX_DAYS} days"),
        })?;
        let mut records = Vec::new();
        for day in &days {
            records.extend(self.day(day).await?);
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_range_lists_its_days_and_a_reversed_one_is_refused() {
        assert_eq!(
            days("2026-02-27", "2026-03-01").expect("range"),
            ["2026-02-27", "2026-02-28", "2026-03-01"]
        );
        assert_eq!(days("2026-03-02", "2026-03-01"), None);
        assert_eq!(days("2026-03-xx", "2026-03-01"), None);
        assert_eq!(days("2024-01-01", "2026-01-01"), None);
    }
}
