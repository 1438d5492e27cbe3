//! The [`ExpiryLedger`] port on DynamoDB: flow 3's own table (`pk`, `sk`, TTL `expires_at`).
//!
//! - `alert#<asset>` / `<window>#<end>`: an alert recorded once (conditional put), with its recipients;
//! - `pending` / `<recipient>#<window>#<asset>`: an alert waiting in a recipient's digest;
//! - `cursor` / `scan`: the unfinished scan (`cursor`, `saved_at_ms`), or when the last one
//!   finished (`finished_at_ms`).
//!
//! An alert and its digest entries are written in one transaction, so an alert is either recorded
//! and waiting for its recipients, or not recorded at all.

use super::dynamodb::{n, s, store_error};
use crate::domain::dam::AssetId;
use crate::domain::expiry::{AlertWindow, PendingAlert};
use crate::ports::{AlertRecord, ExpiryLedger, ScanCursor, StoreError};
use crate::pseudonym::UserPseudonym;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, WriteRequest,
};
use std::collections::HashMap;

const PENDING: &str = "pending";
fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// DynamoDB's limit of items per transaction.
const TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit of requests per batch write.
const BATCH_ITEMS: usize = 25;
/// Unprocessed batch items are resent this many times before the store counts as unavailable.
const BATCH_ATTEMPTS: usize = 5;

/// Flow 3's table.
#[derive(Debug, Clone)]
pub struct DynamoExpiryLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoExpiryLedger {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn rejected(reason: impl Into<String>) -> StoreError {
    StoreError::Rejected {
        reason: reason.into(),
    }
}

fn pending_key(alert: &PendingAlert) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(PENDING)),
        (
            "sk".to_owned(),
            s(format!(
                "{}#{}#{}",
                alert.recipient,
                alert.window.code(),
                alert.asset.asset.as_str()
            )),
        ),
    ])
}

fn put(
    item: HashMap<String, AttributeValue>,
    table: &str,
    condition: Option<&str>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| rejected(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn pending_item(
    alert: &PendingAlert,
    expires_at: i64,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let json = serde_json::to_string(alert).map_err(|e| rejected(e.to_string()))?;
    let mut item = pending_key(alert);
    item.insert("alert".into(), s(json));
    item.insert("expires_at".into(), n(expires_at));
    Ok(item)
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl DynamoExpiryLedger {
    async fn batch(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_ITEMS) {
            let mut left = chunk.to_vec();
            for _ in 0..BATCH_ATTEMPTS {
                if left.is_empty() {
                    break;
                }
                let answer = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, left)
                    .send()
                    .await
                    .map_err(store_error)?;
                left = answer
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
            }
            if !left.is_empty() {
                return Err(StoreError::Unavailable(
                    "DynamoDB left batch writes unprocessed".into(),
                ));
            }
        }
        Ok(())
    }

    async fn query_all(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let answer = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            items.extend(answer.items.unwrap_or_default());
            match answer.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn already_recorded<R>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
                .cancellation_reasons()
                .first()
                .and_then(|r| r.code())
                .is_some_and(|code| code == "ConditionalCheckFailed"),
            _ => false,
        },
        _ => false,
    }
}

impl ExpiryLedger for DynamoExpiryLedger {
    async fn record_alert(
        &self,
        alert: &AlertRecord,
        pending: &[PendingAlert],
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let recipients: Vec<&str> = alert.recipients.iter().map(UserPseudonym::as_str).collect();
        let record = HashMap::from([
            (
                "pk".to_owned(),
                s(format!("alert#{}", alert.asset.as_str())),
            ),
            (
                "sk".to_owned(),
                s(format!("{}#{}", alert.window.code(), alert.ends)),
            ),
            (
                "recipients".to_owned(),
                s(serde_json::to_string(&recipients).map_err(|e| rejected(e.to_string()))?),
            ),
            ("expires_at".to_owned(), n(expires_at)),
        ]);
        let (first, rest) = pending.split_at(pending.len().min(TRANSACTION_ITEMS - 1));
        let mut items = vec![put(record, &self.table, Some("attribute_not_exists(pk)"))?];
        for entry in first {
            items.push(put(pending_item(entry, expires_at)?, &self.table, None)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => {}
            Err(error) if already_recorded(&error) => return Ok(false),
            Err(error) => return Err(store_error(error)),
        }
        // More recipients than one transaction holds: the rest follow (a retry of the alert finds
        // it recorded, so these are written before reporting success).
        let requests = rest
            .iter()
            .map(|entry| {
                Ok(WriteRequest::builder()
                    .put_request(
                        aws_sdk_dynamodb::types::PutRequest::builder()
                            .set_item(Some(pending_item(entry, expires_at)?))
                            .build()
                            .map_err(|e| rejected(e.to_string()))?,
                    )
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch(requests).await?;
        Ok(true)
    }

    async fn pending(&self) -> Result<Vec<PendingAlert>, StoreError> {
        self.query_all(PENDING)
            .await?
            .iter()
            .map(|item| {
                let json = text(item, "alert")
                    .ok_or_else(|| rejected("pending alert without its alert"))?;
                serde_json::from_str(json)
                    .map_err(|e| rejected(format!("unreadable pending alert: {e}")))
            })
            .collect()
    }

    async fn drop_pending(&self, alerts: &[PendingAlert]) -> Result<(), StoreError> {
        let requests = alerts
            .iter()
            .map(|alert| {
                Ok(WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(pending_key(alert)))
                            .build()
                            .map_err(|e| rejected(e.to_string()))?,
                    )
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch(requests).await
    }

    async fn alerts_of(&self, asset: &AssetId) -> Result<Vec<AlertRecord>, StoreError> {
        self.query_all(&format!("alert#{}", asset.as_str()))
            .await?
            .iter()
            .map(|item| {
                let sk = text(item, "sk").ok_or_else(|| rejected("alert without sort key"))?;
                let (window, ends) = sk
                    .split_once('#')
                    .ok_or_else(|| rejected("alert sort key unreadable"))?;
                let window = AlertWindow::parse(window)
                    .ok_or_else(|| rejected("alert window unreadable"))?;
                let recipients: Vec<UserPseudonym> = text(item, "recipients")
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| rejected(format!("alert recipients unreadable: {e}")))?
                    .unwrap_or_default();
                Ok(AlertRecord {
                    asset: asset.clone(),
                    window,
                    ends: ends.to_owned(),
                    recipients,
                })
            })
            .collect()
    }

    async fn action_done(&self, key: &str) -> Result<bool, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("action#{key}")))
            .key("sk", s("done"))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        Ok(item.is_some())
    }

    async fn mark_action_done(&self, key: &str, expires_at: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("action#{key}")))
            .item("sk", s("done"))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn cursor(&self) -> Result<Option<ScanCursor>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("cursor"))
            .key("sk", s("scan"))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        item.as_ref()
            .and_then(|i| text(i, "cursor"))
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| rejected(format!("unreadable scan cursor: {e}")))
            })
            .transpose()
    }

    async fn save_cursor(&self, cursor: Option<&ScanCursor>) -> Result<(), StoreError> {
        match cursor {
            Some(cursor) => {
                let json = serde_json::to_string(cursor).map_err(|e| rejected(e.to_string()))?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s("cursor"))
                    .item("sk", s("scan"))
                    .item("cursor", s(json))
                    .item("saved_at_ms", n(now_ms()))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
            // A finished scan leaves its time where the cursor was (for `connector health`).
            None => {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", s("cursor"))
                    .item("sk", s("scan"))
                    .item("finished_at_ms", n(now_ms()))
                    .send()
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }
}
