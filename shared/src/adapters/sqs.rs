//! SQS adapter: FIFO batches of ten within the 256 KiB request limit, retrying what SQS leaves unprocessed.

use crate::domain::inbound::{InboundItem, MAX_ITEM_BYTES};
use crate::ports::{InboundQueue, QueueError};
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::time::Duration;

/// Entries per `SendMessageBatch` call (the SQS maximum).
const BATCH_ENTRIES: usize = 10;
/// Payload bytes per `SendMessageBatch` call (the SQS maximum on every queue configuration).
const BATCH_BYTES: usize = 256 * 1024;
/// Attempts for entries SQS reports as failed without the sender at fault.
const ATTEMPTS: u32 = 3;

/// The `inbound` FIFO queue.
#[derive(Debug, Clone)]
pub struct SqsInboundQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsInboundQueue {
    /// Wraps a client and the queue's URL.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// The send requests for `items`, grouped into batches; pure, so the edge's CPU cost can be measured.
pub fn batch_entries(
    items: &[InboundItem],
) -> Result<Vec<Vec<SendMessageBatchRequestEntry>>, QueueError> {
    let mut batches: Vec<Vec<SendMessageBatchRequestEntry>> = Vec::new();
    let mut current = Vec::with_capacity(BATCH_ENTRIES.min(items.len()));
    let mut current_bytes = 0;
    for item in items {
        let encode = |item: &InboundItem| {
            serde_json::to_string(item).map_err(|e| QueueError::Rejected {
                reason: format!("cannot encode an item: {e}"),
            })
        };
        let mut body = encode(item)?;
        if body.len() > MAX_ITEM_BYTES {
            // Failing the POST would make Meta redeliver the same body for days and lose every
            // item in it; a marker keeps the item's identity so a consumer can record the loss.
            tracing::error!(item = %item.deduplication_id(), bytes = body.len(),
                "webhook item over the queue's size limit: queued as a marker without its content");
            body = encode(&item.too_large_marker(body.len()))?;
        }
        if current.len() == BATCH_ENTRIES || current_bytes + body.len() > BATCH_BYTES {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += body.len();
        let entry = SendMessageBatchRequestEntry::builder()
            .id(current.len().to_string())
            .message_body(body)
            .message_group_id(item.group_id())
            .message_deduplication_id(item.deduplication_id())
            .build()
            .map_err(|e| QueueError::Rejected {
                reason: e.to_string(),
            })?;
        current.push(entry);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

impl InboundQueue for SqsInboundQueue {
    async fn enqueue(&self, items: &[InboundItem]) -> Result<(), QueueError> {
        for batch in batch_entries(items)? {
            self.send_batch(batch).await?;
        }
        Ok(())
    }
}

impl SqsInboundQueue {
    async fn send_batch(
        &self,
        mut pending: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<(), QueueError> {
        for attempt in 1..=ATTEMPTS {
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(classify)?;
            if output.failed.is_empty() {
                return Ok(());
            }
            if let Some(fault) = output.failed.iter().find(|f| f.sender_fault) {
                return Err(QueueError::Rejected {
                    reason: format!("SQS refused an entry: {}", fault.code),
                });
            }
            let failed: Vec<&str> = output.failed.iter().map(|f| f.id.as_str()).collect();
            pending.retain(|entry| failed.contains(&entry.id.as_str()));
            tracing::warn!(
                attempt,
                unprocessed = pending.len(),
                "SQS left entries unprocessed; retrying them"
            );
            tokio::time::sleep(Duration::from_millis(50 * 2_u64.pow(attempt))).await;
        }
        Err(QueueError::Unavailable(
            format!(
                "{} entries still unprocessed after {ATTEMPTS} attempts",
                pending.len()
            )
            .into(),
        ))
    }
}

fn classify(error: SdkError<SendMessageBatchError>) -> QueueError {
    match &error {
        SdkError::ServiceError(service) => match service.err() {
            SendMessageBatchError::QueueDoesNotExist(_)
            | SendMessageBatchError::BatchEntryIdsNotDistinct(_)
            | SendMessageBatchError::BatchRequestTooLong(_)
            | SendMessageBatchError::EmptyBatchRequest(_)
            | SendMessageBatchError::InvalidBatchEntryId(_)
            | SendMessageBatchError::TooManyEntriesInBatchRequest(_)
            | SendMessageBatchError::UnsupportedOperation(_) => QueueError::Rejected {
                reason: crate::error::chain(&error),
            },
            _ => QueueError::Unavailable(Box::new(error)),
        },
        _ => QueueError::Unavailable(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::{ENVELOPE_VERSION, InboundKind};
    use serde_json::value::RawValue;

    fn item(n: usize, text_len: usize) -> InboundItem {
        let raw = format!(
            r#"{{"id":"wamid.{n}","text":{{"body":"{}"}}}}"#,
            "x".repeat(text_len)
        );
        InboundItem {
            v: ENVELOPE_VERSION,
            kind: InboundKind::Message,
            key: format!("wamid.{n}"),
            user: None,
            phone_number_id: Some("P".into()),
            waba_id: None,
            received_at_ms: 0,
            item: RawValue::from_string(raw).expect("raw"),
            contact: None,
        }
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let items: Vec<_> = (0..23).map(|n| item(n, 10)).collect();
        let sizes: Vec<usize> = batch_entries(&items)
            .expect("ok")
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [10, 10, 3]);
    }

    #[test]
    fn batches_stay_under_the_request_size_limit() {
        let items: Vec<_> = (0..5).map(|n| item(n, 100_000)).collect();
        let batches = batch_entries(&items).expect("ok");
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        for batch in &batches {
            let bytes: usize = batch.iter().map(|e| e.message_body.len()).sum();
            assert!(bytes <= BATCH_BYTES);
        }
    }

    #[test]
    fn an_oversized_item_becomes_a_marker_and_the_others_still_go() {
        let batches =
            batch_entries(&[item(0, 10), item(1, MAX_ITEM_BYTES), item(2, 10)]).expect("sent");
        let bodies: Vec<&str> = batches
            .iter()
            .flatten()
            .map(|e| e.message_body.as_str())
            .collect();
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies[1].contains("item_too_large") && bodies[1].len() < 1024,
            "{}",
            bodies[1]
        );
        assert!(
            bodies[1].contains("wamid.1"),
            "the marker keeps the item's key"
        );
    }
}
