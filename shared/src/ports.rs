//! The capabilities flows need, in the domain's words. Adapters implement them on AWS; `testing`
//! ships in-memory fakes beside them.

use crate::domain::inbound::InboundItem;
use crate::error::Retryable;
use std::future::Future;

/// Durable hand-off of webhook items to the routers.
pub trait InboundQueue: Send + Sync {
    /// Enqueues every item or fails; items already sent stay sent (the queue deduplicates retries).
    fn enqueue(&self, items: &[InboundItem])
    -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A queue refused or could not take items.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached, throttled us, or kept failing entries.
    #[error("the queue is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The queue rejected what we sent; sending the same again will not help.
    #[error("the queue rejected the message: {reason}")]
    Rejected { reason: String },
}

impl Retryable for QueueError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
