//! Delivery tracking: each status webhook updates its sent-message record monotonically, settles
//! a send whose outcome was unknown (by the send key in `biz_opaque_callback_data`), and turns a
//! late `131047` (window closed) into the template version of the message, once.

use crate::domain::inbound::{InboundItem, InboundKind};
use crate::domain::sending::DeliveryState;
use crate::error::Retryable;
use crate::ports::{
    OutboundQueue, PricingInfo, QueueError, SendLedger, SentMessage, SentMessageStore,
    StatusUpdate, StoreError,
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
pub struct DeliveryTracker<L, M, Q> {
    /// The sends table (settles unknown outcomes, holds template versions).
    pub ledger: L,
    /// The sent-messages table.
    pub messages: M,
    /// Where template versions go.
    pub outbound: Q,
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
            e.title.clone().or_else(|| e.message.clone()).unwrap_or_default(),
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

impl<L, M, Q> DeliveryTracker<L, M, Q>
where
    L: SendLedger,
    M: SentMessageStore,
    Q: OutboundQueue,
{
    /// Applies one `DeliveryStatus` item.
    #[tracing::instrument(name = "track_delivery", skip_all, fields(key = %item.key))]
    pub async fn track(&self, item: &InboundItem) -> Result<Tracked, TrackError> {
        if item.kind != InboundKind::Status {
            return Err(TrackError::NotAStatus(None));
        }
        let status: Status = serde_json::from_str(item.item.get())
            .map_err(|e| TrackError::NotAStatus(Some(e)))?;
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
            tracing::info!(outcome = "settled", "a send of unknown outcome was settled by its status");
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
                tracing::info!(outcome = "template_queued", "the window had closed; the template version is queued");
                return Ok(Tracked::TemplateQueued);
            }
        }
        Ok(Tracked::Applied(tracked.state))
    }
}
