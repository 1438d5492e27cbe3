//! The DAM webhook edge: authenticate the raw POST by its shared secret header, split it into
//! events, enqueue them. No DAM calls here: answer fast.

use crate::domain::dam::{self, DamWebhookError};
use crate::ports::{DamEventQueue, QueueError};
use crate::secrets::Secret;

/// What the edge needs, built once per cold start.
#[derive(Debug)]
pub struct DamWebhookEdge<Q> {
    /// The shared secret the DAM's automation sends in the header.
    pub secret: Secret,
    /// Where events go.
    pub queue: Q,
}

/// Why a POST was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DamAcceptError {
    /// The header was missing or held another value.
    #[error("the DAM webhook secret header is missing or wrong")]
    Unauthenticated,
    /// Authenticated, but not a body the connector understands.
    #[error(transparent)]
    Body(#[from] DamWebhookError),
    /// The events could not be enqueued; the DAM must deliver again.
    #[error("the DAM events could not be enqueued")]
    Queue(#[from] QueueError),
}

/// A body durably handed off.
#[derive(Debug, PartialEq, Eq)]
pub struct DamAccepted {
    /// Events enqueued.
    pub enqueued: usize,
    /// Topics ignored on purpose.
    pub ignored: Vec<String>,
}

impl<Q: DamEventQueue> DamWebhookEdge<Q> {
    /// Authenticates (constant time), splits and enqueues; succeeds only when every event is enqueued.
    #[tracing::instrument(name = "accept_dam_webhook", skip_all, fields(bytes = body.len()))]
    pub async fn accept(
        &self,
        presented_secret: Option<&[u8]>,
        body: &[u8],
    ) -> Result<DamAccepted, DamAcceptError> {
        let authentic = presented_secret.is_some_and(|presented| {
            crate::crypto::secrets_equal(presented, self.secret.expose().as_bytes())
        });
        if !authentic {
            return Err(DamAcceptError::Unauthenticated);
        }
        let split = dam::split_webhook(body)?;
        for topic in &split.ignored {
            tracing::info!(topic = %topic, "ignored a DAM webhook topic on purpose");
        }
        if !split.events.is_empty() {
            self.queue.enqueue(&split.events).await?;
        }
        tracing::info!(enqueued = split.events.len(), "DAM webhook accepted");
        Ok(DamAccepted {
            enqueued: split.events.len(),
            ignored: split.ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryDamEventQueue;

    fn edge() -> DamWebhookEdge<InMemoryDamEventQueue> {
        DamWebhookEdge {
            secret: Secret::new("s3cret"),
            queue: InMemoryDamEventQueue::default(),
        }
    }

    const BODY: &[u8] = br#"{"events":[{"eventId":"e1","topic":"asset.edited","recordId":"A1"}]}"#;

    #[tokio::test]
    async fn the_right_secret_enqueues_the_events() {
        let edge = edge();
        let accepted = edge.accept(Some(b"s3cret"), BODY).await.expect("ok");
        assert_eq!(accepted.enqueued, 1);
        assert_eq!(edge.queue.event_ids(), ["e1"]);
    }

    #[tokio::test]
    async fn a_wrong_or_missing_secret_enqueues_nothing() {
        let edge = edge();
        for presented in [None, Some(&b"s3creT"[..]), Some(&b"s3cret-and-more"[..])] {
            assert!(matches!(
                edge.accept(presented, BODY).await,
                Err(DamAcceptError::Unauthenticated)
            ));
        }
        assert!(edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_fails_the_delivery() {
        let edge = edge();
        edge.queue.fail_next(1);
        assert!(matches!(
            edge.accept(Some(b"s3cret"), BODY).await,
            Err(DamAcceptError::Queue(QueueError::Unavailable(_)))
        ));
    }
}
