//! SQS adapters for the DAM side: `dam-events` (standard queue) and the flow queues (FIFO, one
//! message group per asset, deduplicated on the domain event id).

use crate::adapters::sqs::{SendLimits, pack, send_batches};
use crate::domain::dam::{DamEvent, DomainEvent, Flow};
use crate::ports::{DamEventQueue, FlowPublisher, QueueError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::BTreeMap;

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
    limits: SendLimits,
}

impl SqsJsonQueue {
    /// Wraps a client and a queue URL, with the default [`SendLimits`].
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            limits: SendLimits::default(),
        }
    }

    /// The same queue with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: SendLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sends every message, batched and a bounded number of calls at once (see
    /// [`crate::adapters::sqs::SendLimits`]).
    async fn send(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id("0")
                .message_body(message.body);
            if let Some((group, dedup)) = message.fifo {
                entry = entry
                    .message_group_id(group)
                    .message_deduplication_id(dedup);
            }
            entries.push(entry.build().map_err(|e| QueueError::Rejected {
                reason: e.to_string(),
            })?);
        }
        send_batches(&self.client, &self.url, pack(entries), self.limits).await
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

/// `outbound.fifo`: one message group per recipient, deduplicated on the send key.
#[derive(Debug, Clone)]
pub struct SqsOutboundQueue(pub SqsJsonQueue);

impl crate::ports::OutboundQueue for SqsOutboundQueue {
    async fn enqueue(
        &self,
        requests: &[crate::domain::outbound::OutboundRequest],
    ) -> Result<(), QueueError> {
        let messages = requests
            .iter()
            .map(|r| {
                Ok(Outgoing {
                    body: encode(r)?,
                    fifo: Some((r.group_id(), r.key.deduplication_id())),
                })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        self.0.send(messages).await
    }
}

/// route-inbound's output queues: FIFO, one message group per user, deduplicated on a digest of
/// the wamid (statuses: of `wamid:status`). An answer to one of our messages goes to the queue of
/// the flow that sent it (the flow's own queue, which also carries its domain events); an answer
/// for a flow without a queue is kept on the unrouted queue.
#[derive(Debug, Clone)]
pub struct SqsInboundRoutes {
    queues: BTreeMap<crate::domain::routing::Destination, SqsJsonQueue>,
    replies: BTreeMap<crate::domain::outbound::MessageFlow, SqsJsonQueue>,
}

impl SqsInboundRoutes {
    /// One FIFO queue per destination, and one per flow that takes answers.
    pub fn new(
        queues: BTreeMap<crate::domain::routing::Destination, SqsJsonQueue>,
        replies: BTreeMap<crate::domain::outbound::MessageFlow, SqsJsonQueue>,
    ) -> Self {
        Self { queues, replies }
    }

    fn queue(
        &self,
        to: crate::domain::routing::Destination,
        message: Option<&crate::domain::outbound::RoutedMessage>,
    ) -> Result<&SqsJsonQueue, QueueError> {
        use crate::domain::routing::Destination;
        if to == Destination::Replies {
            let flow = message.and_then(|m| m.answers.as_ref()).map(|k| k.flow);
            if let Some(queue) = flow.and_then(|flow| self.replies.get(&flow)) {
                return Ok(queue);
            }
            tracing::warn!(flow = ?flow, "an answer for a flow without a queue is kept unrouted");
            return self.queue(Destination::Unrouted, None);
        }
        self.queues.get(&to).ok_or_else(|| QueueError::Rejected {
            reason: format!("no queue configured for {}", to.as_str()),
        })
    }

    async fn send(
        &self,
        to: crate::domain::routing::Destination,
        routed: Option<&crate::domain::outbound::RoutedMessage>,
        message: Outgoing,
    ) -> Result<(), QueueError> {
        self.queue(to, routed)?.send(vec![message]).await
    }
}

impl crate::ports::InboundRoutes for SqsInboundRoutes {
    async fn status(&self, item: &crate::domain::inbound::InboundItem) -> Result<(), QueueError> {
        self.send(
            crate::domain::routing::Destination::DeliveryStatus,
            None,
            Outgoing {
                body: encode(item)?,
                fifo: Some((item.group_id(), item.deduplication_id())),
            },
        )
        .await
    }

    async fn route(
        &self,
        to: crate::domain::routing::Destination,
        message: &crate::domain::outbound::RoutedMessage,
    ) -> Result<(), QueueError> {
        self.send(
            to,
            Some(message),
            Outgoing {
                body: encode(message)?,
                fifo: Some((
                    message.user.as_str().to_owned(),
                    crate::crypto::sha256_hex(&[message.key.as_bytes()]),
                )),
            },
        )
        .await
    }
}
