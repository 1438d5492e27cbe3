//! SQS adapters for the DAM side: `dam-events` (standard queue) and the flow queues (FIFO, one
//! message group per asset, deduplicated on the domain event id).

use crate::domain::dam::{DamEvent, DomainEvent, Flow};
use crate::ports::{DamEventQueue, FlowPublisher, QueueError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::BTreeMap;

/// Entries per `SendMessageBatch` call (the SQS maximum).
const BATCH_ENTRIES: usize = 10;

/// One message to send.
#[derive(Debug, Clone)]
struct Outgoing {
    body: String,
    /// FIFO message group and deduplication id.
    fifo: Option<(String, String)>,
}

/// A queue taking JSON messages.
#[derive(Debug, Clone)]
pub struct SqsJsonQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsJsonQueue {
    /// Wraps a client and a queue URL.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        for chunk in messages.chunks(BATCH_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, message) in chunk.iter().enumerate() {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body);
                if let Some((group, dedup)) = &message.fifo {
                    entry = entry
                        .message_group_id(group)
                        .message_deduplication_id(dedup);
                }
                entries.push(entry.build().map_err(|e| QueueError::Rejected {
                    reason: e.to_string(),
                })?);
            }
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
            if let Some(failed) = output.failed.first() {
                return Err(if failed.sender_fault {
                    QueueError::Rejected {
                        reason: format!("SQS refused an entry: {}", failed.code),
                    }
                } else {
                    QueueError::Unavailable(
                        format!("SQS left an entry unprocessed: {}", failed.code).into(),
                    )
                });
            }
        }
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, QueueError> {
    serde_json::to_string(value).map_err(|e| QueueError::Rejected {
        reason: e.to_string(),
    })
}

/// `dam-events`: a standard queue; change detection deduplicates on the event id.
#[derive(Debug, Clone)]
pub struct SqsDamEventQueue(pub SqsJsonQueue);

impl DamEventQueue for SqsDamEventQueue {
    async fn enqueue(&self, events: &[DamEvent]) -> Result<(), QueueError> {
        let messages = events
            .iter()
            .map(|e| {
                Ok(Outgoing {
                    body: encode(e)?,
                    fifo: None,
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        self.0.send(messages).await
    }
}

/// The flow queues, by flow.
#[derive(Debug, Clone)]
pub struct SqsFlowPublisher {
    queues: BTreeMap<Flow, SqsJsonQueue>,
}

impl SqsFlowPublisher {
    /// One FIFO queue per flow.
    pub fn new(queues: BTreeMap<Flow, SqsJsonQueue>) -> Self {
        Self { queues }
    }
}

impl FlowPublisher for SqsFlowPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), QueueError> {
        let mut by_flow: BTreeMap<Flow, Vec<Outgoing>> = BTreeMap::new();
        for event in events {
            by_flow
                .entry(event.kind.flow())
                .or_default()
                .push(Outgoing {
                    body: encode(event)?,
                    fifo: Some((event.asset.to_string(), event.id.clone())),
                });
        }
        for (flow, messages) in by_flow {
            let queue = self.queues.get(&flow).ok_or_else(|| QueueError::Rejected {
                reason: format!("no queue configured for {flow:?}"),
            })?;
            queue.send(messages).await?;
        }
        Ok(())
    }
}
