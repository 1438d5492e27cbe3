//! Delivery tracking: each status webhook updates its sent-message record monotonically, settles
//! a send whose outcome was unknown (by the send key in `biz_opaque_callback_data`), and turns a
//! late `131047` (window closed) into the template version of the message, once.

use crate::domain::inbound::{InboundItem, InboundKind};
use crate::domain::outbound::MessageFlow;
use crate::domain::sending::DeliveryState;
use crate::error::Retryable;
use crate::ports::{
    OutboundQueue, PricingInfo, QueueError, SendLedger, SentMessage, SentMessageStore,
    SharingAudit, StatusUpdate, StoreError,
};
use crate::whatsapp::webhook_types::{Status, StatusKind};

/// Meta's code for a free-form message outside the 24-hour window.
pub const WINDOW_CLOSED: i64 = 131_047;

/// What a status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Applied to its record (which now holds `state`).
    Applied(DeliveryState),
    /// Applied, and the template version was queued.
    TemplateQueued,
    /// Not a message of ours, or a state this code does not know: logged and acknowledged.
    Ignored,
}

/// A status that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// Not a status item, or not Meta's status shape: it never will be.
    #[error("the item is not a status")]
    NotAStatus(#[source] Option<serde_json::Error>),
    /// A table failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// The outbound queue failed.
    #[error("the outbound queue failed")]
    Queue(#[from] QueueError),
}

impl Retryable for TrackError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::NotAStatus(_) => false,
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
        }
    }
}

/// Delivery tracking and its ports.
#[derive(Debug)]
pub struct DeliveryTracker<L, M, Q, A> {
    /// The sends table (settles unknown outcomes, holds template versions).
    pub ledger: L,
    /// The sent-messages table.
    pub messages: M,
    /// Where template versions go.
    pub outbound: Q,
    /// The sharing audit: a flow-5 share's sent, delivered and read.
    pub audit: A,
}

fn state_of(kind: StatusKind) -> Option<DeliveryState> {
    match kind {
        StatusKind::Sent => Some(DeliveryState::Sent),
        StatusKind::Delivered => Some(DeliveryState::Delivered),
        StatusKind::Read | StatusKind::Played => Some(DeliveryState::Read),
        StatusKind::Failed => Some(DeliveryState::Failed),
        StatusKind::Unknown => None,
    }
}

/// The update a status webhook makes.
pub fn update_of(status: &Status) -> Option<StatusUpdate> {
    let state = state_of(status.kind())?;
    let at_ms = status
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(0, |s| s.saturating_mul(1000));
    let error = status.errors.first().map(|e| {
        (
            e.code,
            e.title
                .clone()
                .or_else(|| e.message.clone())
                .unwrap_or_default(),
        )
    });
    let pricing = status.pricing.as_ref().map(|p| PricingInfo {
        category: p.category.clone(),
        model: p.pricing_model.clone(),
        kind: p.kind.clone(),
        billable: p.billable,
    });
    Some(StatusUpdate {
        state,
        at_ms,
        error,
        pricing,
    })
}

impl<L, M, Q, A> DeliveryTracker<L, M, Q, A>
where
    L: SendLedger,
    M: SentMessageStore,
    Q: OutboundQueue,
    A: SharingAudit,
{
    /// Applies one `DeliveryStatus` item.
    #[tracing::instrument(name = "track_delivery", skip_all, fields(key = %item.key))]
    pub async fn track(&self, item: &InboundItem) -> Result<Tracked, TrackError> {
        if item.kind != InboundKind::Status {
            return Err(TrackError::NotAStatus(None));
        }
        let status: Status =
            serde_json::from_str(item.item.get()).map_err(|e| TrackError::NotAStatus(Some(e)))?;
        let Some(update) = update_of(&status) else {
            tracing::warn!(status = %status.status, "a status this connector does not know; kept in the log only");
            return Ok(Tracked::Ignored);
        };
        let callback = status.biz_opaque_callback_data.as_deref();
        let mut tracked = self.messages.apply_status(&status.id, &update).await?;
        if tracked.is_none()
            && let Some(key) = callback
            && let Some(entry) = self.ledger.settle(key, &status.id).await?
        {
            // The sender never recorded the id (it died or timed out after Graph accepted):
            // the status carrying the send key is how the record comes to exist.
            tracing::info!(
                outcome = "settled",
                "a send of unknown outcome was settled by its status"
            );
            self.messages
                .record(&SentMessage {
                    message_id: status.id.clone(),
                    key: entry.record.key.clone(),
                    number: entry.record.number.clone(),
                    actor: entry.record.actor.clone(),
                    what: entry.record.what.clone(),
                    at_ms: update.at_ms,
                })
                .await?;
            tracked = self.messages.apply_status(&status.id, &update).await?;
        }
        let Some(tracked) = tracked else {
            tracing::info!("a status for a message this connector did not send");
            return Ok(Tracked::Ignored);
        };
        let key = &tracked.message.key;
        if key.flow == MessageFlow::Sharing {
            // A share sent as its template after a late 131047 travels under the template
            // version's key: its audit record is the original send's.
            let audited = match key.version.strip_suffix("#template") {
                Some(version) => crate::domain::outbound::SendKey {
                    version: version.to_owned(),
                    ..key.clone()
                },
                None => key.clone(),
            };
            let marked = self
                .audit
                .mark(&audited.encode(), &status.id, update.state, update.at_ms)
                .await?;
            if !marked {
                // The rep's own answers are sharing sends too; only shares have audit records.
                tracing::debug!("a sharing send without an audit record");
            }
        }
        if update.state == DeliveryState::Failed {
            let code = update.error.as_ref().map(|(code, _)| *code);
            tracing::warn!(code, "a sent message failed");
            if code == Some(WINDOW_CLOSED)
                && let Some(key) = callback
                && let Some(entry) = self.ledger.find(key).await?
                && let Some(fallback) = entry.record.fallback
            {
                // Deduplicated on its own send key (queue and claims): queued again by a
                // redelivered status, it is still sent once.
                self.outbound.enqueue(&[fallback]).await?;
                tracing::info!(
                    outcome = "template_queued",
                    "the window had closed; the template version is queued"
                );
                return Ok(Tracked::TemplateQueued);
            }
        }
        Ok(Tracked::Applied(tracked.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::WhatsAppAddress;
    use crate::domain::inbound::ENVELOPE_VERSION;
    use crate::domain::outbound::{MessageFlow, OUTBOUND_VERSION, SendFrom, SendKey};
    use crate::ports::{BusinessNumberId, OwnerToken, SendRecord, SendState};
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;
    use crate::testing::{
        InMemoryOutboundQueue, InMemorySendLedger, InMemorySentMessageStore, InMemorySharingAudit,
    };
    use serde_json::json;

    type Tracker = DeliveryTracker<
        InMemorySendLedger,
        InMemorySentMessageStore,
        InMemoryOutboundQueue,
        InMemorySharingAudit,
    >;

    fn tracker() -> Tracker {
        DeliveryTracker {
            ledger: InMemorySendLedger::default(),
            messages: InMemorySentMessageStore::default(),
            outbound: InMemoryOutboundQueue::default(),
            audit: InMemorySharingAudit::default(),
        }
    }

    fn key() -> SendKey {
        SendKey {
            flow: MessageFlow::Sharing,
            subject: "A-1".into(),
            version: "3".into(),
            recipient: Pseudonymizer::new(&Secret::new("k")).pseudonym("447700900123"),
        }
    }

    fn number() -> BusinessNumberId {
        BusinessNumberId::parse("109876543210987").expect("digits")
    }

    fn item(status: serde_json::Value) -> InboundItem {
        InboundItem {
            v: ENVELOPE_VERSION,
            kind: InboundKind::Status,
            key: "wamid.X:status".into(),
            user: None,
            phone_number_id: Some("109876543210987".into()),
            waba_id: None,
            received_at_ms: 0,
            item: serde_json::value::RawValue::from_string(status.to_string()).expect("json"),
            contact: None,
        }
    }

    fn status(state: &str, at: u64) -> serde_json::Value {
        json!({"id": "wamid.X", "status": state, "timestamp": at.to_string(),
               "biz_opaque_callback_data": key().encode()})
    }

    async fn claimed(tracker: &Tracker, fallback: bool) -> OwnerToken {
        let owner = OwnerToken("o".into());
        let fallback = fallback.then(|| crate::domain::outbound::OutboundRequest {
            v: OUTBOUND_VERSION,
            key: crate::domain::sending::template_version_key(&key()),
            to: WhatsAppAddress::parse("+447700900123").expect("number"),
            from: SendFrom::Number("109876543210987".into()),
            content: None,
            template: None,
            reply_to: None,
            actor: None,
            requested_at_ms: 0,
        });
        tracker
            .ledger
            .claim(
                &SendRecord {
                    key: key(),
                    number: number(),
                    actor: Some("rep".into()),
                    what: "text".into(),
                    fallback,
                },
                &owner,
                0,
                10,
                1_000,
            )
            .await
            .expect("claimed");
        owner
    }

    async fn sent(tracker: &Tracker) {
        let owner = claimed(tracker, true).await;
        tracker
            .ledger
            .complete(
                &key(),
                &owner,
                &crate::ports::SendOutcome::Sent {
                    message_id: "wamid.X".into(),
                },
            )
            .await
            .expect("complete");
        tracker
            .messages
            .record(&SentMessage {
                message_id: "wamid.X".into(),
                key: key(),
                number: number(),
                actor: None,
                what: "text".into(),
                at_ms: 0,
            })
            .await
            .expect("recorded");
    }

    #[tokio::test]
    async fn statuses_arriving_read_delivered_sent_end_as_read() {
        let tracker = tracker();
        sent(&tracker).await;
        for (state, at) in [("read", 3), ("delivered", 2), ("sent", 1)] {
            tracker
                .track(&item(status(state, at)))
                .await
                .expect("applied");
        }
        let record = tracker
            .messages
            .get("wamid.X")
            .await
            .expect("read")
            .expect("record");
        assert_eq!(record.state, DeliveryState::Read);
        assert_eq!(record.history.len(), 3);
    }

    #[tokio::test]
    async fn a_shares_statuses_mark_its_audit_record_keeping_each_first_time() {
        use crate::ports::SharingAudit as _;
        let tracker = tracker();
        sent(&tracker).await;
        let record = crate::domain::sharing::AuditRecord {
            send_key: key().encode(),
            asset: "A-1".into(),
            version: "3".into(),
            rep: "Maria".into(),
            rep_pseudonym: "u_r".into(),
            recipient: key().recipient.as_str().to_owned(),
            requested_at_ms: 0,
            message_id: None,
            sent_at_ms: None,
            delivered_at_ms: None,
            read_at_ms: None,
        };
        assert!(tracker.audit.append(&record).await.expect("appended"));
        for (state, at) in [("delivered", 2), ("read", 3), ("delivered", 9)] {
            tracker
                .track(&item(status(state, at)))
                .await
                .expect("applied");
        }
        let audited = tracker.audit.records();
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].message_id.as_deref(), Some("wamid.X"));
        assert_eq!(audited[0].sent_at_ms, Some(2_000), "delivered implies sent");
        assert_eq!(audited[0].delivered_at_ms, Some(2_000));
        assert_eq!(audited[0].read_at_ms, Some(3_000));
    }

    #[tokio::test]
    async fn a_failed_status_keeps_metas_code_and_title() {
        let tracker = tracker();
        sent(&tracker).await;
        let mut failed = status("failed", 2);
        failed["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
        tracker.track(&item(failed)).await.expect("applied");
        let record = tracker
            .messages
            .get("wamid.X")
            .await
            .expect("read")
            .expect("record");
        assert_eq!(record.state, DeliveryState::Failed);
        assert_eq!(record.error_code, Some(131_026));
        assert_eq!(record.error_title.as_deref(), Some("Message undeliverable"));
    }

    #[tokio::test]
    async fn a_late_131047_queues_the_template_version_which_the_queue_takes_once() {
        let tracker = tracker();
        sent(&tracker).await;
        let mut failed = status("failed", 2);
        failed["errors"] = json!([{"code": 131047, "title": "Re-engagement message"}]);
        for _ in 0..2 {
            assert_eq!(
                tracker.track(&item(failed.clone())).await.expect("applied"),
                Tracked::TemplateQueued
            );
        }
        let queued = tracker.outbound.events();
        assert_eq!(
            queued.len(),
            1,
            "deduplicated on the template version's key"
        );
        assert_eq!(queued[0].key.version, "3#template");
    }

    #[tokio::test]
    async fn a_status_settles_a_send_whose_answer_never_arrived() {
        let tracker = tracker();
        claimed(&tracker, false).await;
        assert_eq!(
            tracker
                .track(&item(status("delivered", 2)))
                .await
                .expect("applied"),
            Tracked::Applied(DeliveryState::Delivered)
        );
        let entry = tracker
            .ledger
            .find(&key().encode())
            .await
            .expect("read")
            .expect("entry");
        assert_eq!(entry.state, SendState::Sent);
        assert_eq!(entry.message_id.as_deref(), Some("wamid.X"));
        let record = tracker
            .messages
            .get("wamid.X")
            .await
            .expect("read")
            .expect("record");
        assert_eq!(record.message.actor.as_deref(), Some("rep"));
    }

    #[tokio::test]
    async fn a_status_of_someone_elses_message_is_ignored_and_a_message_item_is_refused() {
        let tracker = tracker();
        let foreign = json!({"id": "wamid.Y", "status": "read", "timestamp": "1"});
        assert_eq!(
            tracker.track(&item(foreign)).await.expect("ok"),
            Tracked::Ignored
        );
        let mut message = item(json!({"id": "wamid.Z"}));
        message.kind = InboundKind::Message;
        let error = tracker.track(&message).await.expect_err("not a status");
        assert!(!error.is_retryable());
    }
}
