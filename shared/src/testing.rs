//! In-memory fakes of the ports, shipped beside them for unit tests of flows and handlers.

use crate::domain::inbound::InboundItem;
use crate::ports::{InboundQueue, QueueError};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An inbound queue that keeps items in memory and deduplicates by key, like a FIFO queue.
#[derive(Debug, Default)]
pub struct InMemoryInboundQueue {
    items: Mutex<Vec<InboundItem>>,
    failures: AtomicUsize,
}

impl InMemoryInboundQueue {
    /// The keys of the items held, in order.
    pub fn keys(&self) -> Vec<String> {
        self.items
            .lock()
            .map(|items| items.iter().map(|i| i.key.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes the next `n` enqueue calls fail as if SQS were unreachable.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }
}

impl InboundQueue for InMemoryInboundQueue {
    async fn enqueue(&self, items: &[InboundItem]) -> Result<(), QueueError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError::Unavailable("simulated outage".into()));
        }
        let mut held = self
            .items
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?;
        for item in items {
            if !held.iter().any(|h| h.key == item.key) {
                let copy = serde_json::to_string(item).and_then(|s| serde_json::from_str(&s));
                held.push(copy.map_err(|e| QueueError::Rejected {
                    reason: e.to_string(),
                })?);
            }
        }
        Ok(())
    }
}
