//! The DAM webhook edge: authenticate the raw POST by its shared secret header, split it into
//! events, enqueue them. No DAM calls here: answer fast.

use crate::domain::dam::{self, DamWebhookError, RejectedEvent};
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
    /// Every event of a non-empty list was refused; nothing was enqueued.
    #[error("every event of the DAM webhook was refused ({} of them)", .0.len())]
    NothingValid(Vec<RejectedEvent>),
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
    /// Events refused on their own, by index; never enqueued, reported to the DAM.
    pub rejected: Vec<RejectedEvent>,
}

/// A topic as it may appear in a log line: a short token, or a fixed stand-in for anything else
/// (the field is sender-controlled text).
fn loggable_topic(topic: &str) -> &str {
    let token = topic.len() <= 64
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if token { topic } else { "(not a topic name)" }
}

impl<Q: DamEventQueue> DamWebhookEdge<Q> {
    /// Authenticates (constant time), splits and enqueues every valid event. Succeeds when each
    /// valid event is enqueued, reporting the refused ones; fails when events were sent and
    /// none of them was valid, so the DAM is never told "OK" for a body that enqueued nothing.
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
            tracing::info!(
                topic = loggable_topic(topic),
                "ignored a DAM webhook topic on purpose"
            );
        }
        for rejected in &split.rejected {
            tracing::warn!(
                index = rejected.index,
                reason = rejected.problem.as_str(),
                "refused one event of a DAM webhook; the others go on"
            );
        }
        if split.events.is_empty() && !split.rejected.is_empty() {
            return Err(DamAcceptError::NothingValid(split.rejected));
        }
        if !split.events.is_empty() {
            self.queue.enqueue(&split.events).await?;
            crate::metrics::count_in(
                "dam-events",
                crate::metrics::Outcome::Received,
                split.events.len() as u64,
            );
        }
        tracing::info!(
            enqueued = split.events.len(),
            rejected = split.rejected.len(),
            "DAM webhook accepted"
        );
        Ok(DamAccepted {
            enqueued: split.events.len(),
            ignored: split.ignored,
            rejected: split.rejected,
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
    async fn four_good_events_are_enqueued_and_the_one_with_a_numeric_id_reported() {
        let edge = edge();
        let body = br#"{"events":[
          {"eventId":"e1","topic":"asset.edited","recordId":"A1"},
          {"eventId":"e2","topic":"asset.edited","recordId":"A2"},
          {"eventId":3,"topic":"asset.edited","recordId":"A3"},
          {"eventId":"e4","topic":"asset.created","recordId":"A4"},
          {"eventId":"e5","topic":"asset.deleted","recordId":"A5"}]}"#;
        let accepted = edge.accept(Some(b"s3cret"), body).await.expect("ok");
        assert_eq!(edge.queue.event_ids(), ["e1", "e2", "e4", "e5"]);
        assert_eq!(accepted.enqueued, 4);
        assert_eq!(
            accepted.rejected,
            [RejectedEvent {
                index: 2,
                problem: dam::EventProblem::EventId
            }]
        );
    }

    #[tokio::test]
    async fn a_list_of_only_bad_events_is_refused_and_enqueues_nothing() {
        let edge = edge();
        let err = edge
            .accept(Some(b"s3cret"), br#"{"events":[null,{"eventId":"e"}]}"#)
            .await
            .expect_err("nothing valid");
        let DamAcceptError::NothingValid(rejected) = err else {
            panic!("{err:?}");
        };
        assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
        assert!(edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn foreign_topics_alone_and_an_empty_list_are_acknowledged() {
        let edge = edge();
        let only_foreign = br#"{"events":[{"eventId":"e","topic":"user.login","recordId":"X"}]}"#;
        let accepted = edge
            .accept(Some(b"s3cret"), only_foreign)
            .await
            .expect("ok");
        assert_eq!((accepted.enqueued, accepted.ignored.len()), (0, 1));
        let empty = edge
            .accept(Some(b"s3cret"), br#"{"events":[]}"#)
            .await
            .expect("ok");
        assert_eq!(empty.enqueued, 0);
    }

    #[test]
    fn only_topic_shaped_names_reach_the_log() {
        assert_eq!(loggable_topic("user.login"), "user.login");
        assert_eq!(loggable_topic("call +44 7700 900123"), "(not a topic name)");
        assert_eq!(loggable_topic(&"a".repeat(65)), "(not a topic name)");
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
