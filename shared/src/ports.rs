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

use crate::domain::dam::{AssetId, AssetSnapshot, AssetState, DamEvent, DamInstant, DomainEvent};

/// Hand-off of DAM webhook events to change detection.
pub trait DamEventQueue: Send + Sync {
    /// Enqueues every event or fails.
    fn enqueue(&self, events: &[DamEvent]) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The flow queues domain events go to.
pub trait FlowPublisher: Send + Sync {
    /// Publishes every event to its flow's queue, or fails (already published ones may repeat:
    /// event ids are deterministic, consumers deduplicate on them).
    fn publish(
        &self,
        events: &[DomainEvent],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The DAM, as change detection reads it.
pub trait AssetSource: Send + Sync {
    /// The asset's current metadata; `None` when it no longer exists.
    fn read(
        &self,
        id: &AssetId,
    ) -> impl Future<Output = Result<Option<AssetSnapshot>, DamError>> + Send;

    /// Assets whose edit date is at or after `since`, one page at a time, oldest first as far as
    /// the DAM sorts them. The stream may end before the last match (a page cap, the invocation's
    /// time running out; the adapter logs why): callers resume from what they read.
    fn edited_since(
        &self,
        since: DamInstant,
    ) -> impl futures::Stream<Item = Result<Vec<AssetSnapshot>, DamError>> + Send + '_;

    /// Assets deleted at or after `since`.
    fn deleted_since(
        &self,
        since: DamInstant,
    ) -> impl Future<Output = Result<Vec<AssetId>, DamError>> + Send;
}

/// The DAM could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DamError {
    /// Worth trying again later (throttled, 5xx, unreachable).
    #[error("the DAM is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Refused or answered something unusable; retrying will not help.
    #[error("the DAM refused the request")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Retryable for DamError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Version of a stored asset state, for optimistic concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateVersion(pub u64);

/// Outcome of a conditional save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Written.
    Written,
    /// Someone else wrote first; reload and compare again.
    Conflict,
}

/// What the connector remembers per asset, and the poll's watermark.
pub trait AssetStateStore: Send + Sync {
    /// The last known state and its version.
    fn load(
        &self,
        id: &AssetId,
    ) -> impl Future<Output = Result<Option<(AssetState, StateVersion)>, StoreError>> + Send;

    /// Saves `state` if the stored version is still `expected` (`None`: nothing stored yet).
    fn save(
        &self,
        id: &AssetId,
        state: &AssetState,
        expected: Option<StateVersion>,
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// Forgets a deleted asset.
    fn forget(&self, id: &AssetId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The poll's watermark: the latest edit date already scanned.
    fn watermark(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Moves the watermark forward (never backward).
    fn advance_watermark(&self, to: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The result of claiming a unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the deadline.
    Acquired,
    /// Already done: skip it.
    AlreadyDone,
    /// Another worker holds it and its deadline has not passed.
    HeldElsewhere,
}

/// Who holds a claim: random per attempt, so only the holder can complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerToken(pub String);

/// Idempotency claims: INPROGRESS with an owner and a deadline, then COMPLETED, both with a TTL.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `owner` until `deadline` (Unix seconds); an expired in-progress claim is taken over.
    fn claim(
        &self,
        key: &str,
        owner: &OwnerToken,
        now: i64,
        deadline: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks `key` done, if `owner` still holds it; kept until `expires_at` (Unix seconds).
    fn complete(
        &self,
        key: &str,
        owner: &OwnerToken,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives `key` up so a redelivery can do it, if `owner` still holds it.
    fn release(
        &self,
        key: &str,
        owner: &OwnerToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A state or claims store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, throttled, 5xx.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The claim belongs to another owner now (our deadline passed).
    #[error("the claim is no longer ours")]
    NotOwner,
    /// Refused what we sent, or holds something unreadable.
    #[error("the store refused the request: {reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
}

impl Retryable for StoreError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

use crate::whatsapp::client::{SendError, SendReceipt};
use crate::whatsapp::messages::OutgoingMessage;

/// Meta's id of one of the connector's business phone numbers (`phone_number_id`, digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusinessNumberId(String);

impl BusinessNumberId {
    /// Accepts Meta's all-digit ids.
    pub fn parse(id: &str) -> Option<Self> {
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| Self(id.to_owned()))
    }

    /// The id as Graph expects it in paths.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Sends WhatsApp messages from one of the business numbers (the one sender's Graph side).
pub trait MessageSender: Send + Sync {
    /// Validates and sends `message` from `from`; accepted is not delivered (statuses follow).
    fn send(
        &self,
        from: &BusinessNumberId,
        message: &OutgoingMessage,
    ) -> impl Future<Output = Result<SendReceipt, SendError>> + Send;
}

use crate::domain::contact::{Contact, OptChange, Role};
use crate::domain::outbound::{OutboundRequest, SentMessageRef};
use crate::pseudonym::UserPseudonym;

/// The contact directory: who each WhatsApp user is, and whether they may be messaged.
pub trait ContactDirectory: Send + Sync {
    /// The entry of `who`, if any.
    fn get(
        &self,
        who: &UserPseudonym,
    ) -> impl Future<Output = Result<Option<Contact>, StoreError>> + Send;

    /// Writes the directory fields of `contact` (name, address, roles, regions, language, time
    /// zone, quiet hours, project, opt-in); a recorded opt-out is kept whatever `contact` says.
    fn put(&self, contact: &Contact) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`ContactDirectory::put`] for many contacts (an import), a bounded number of writes at once.
    fn put_many(&self, contacts: &[Contact])
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every entry (the export).
    fn all(&self) -> impl Future<Output = Result<Vec<Contact>, StoreError>> + Send;

    /// Every contact with `role` (flows pick recipients by role).
    fn with_role(
        &self,
        role: Role,
    ) -> impl Future<Output = Result<Vec<Contact>, StoreError>> + Send;

    /// Records that `who` opted out at `at_ms` (creating a bare entry for unknown users);
    /// `Unchanged` when they already had.
    fn opt_out(
        &self,
        who: &UserPseudonym,
        at_ms: i64,
    ) -> impl Future<Output = Result<OptChange, StoreError>> + Send;

    /// Clears the opt-out of `who` and records the opt-in's time and source; `Unchanged` when
    /// they were not opted out.
    fn opt_in(
        &self,
        who: &UserPseudonym,
        at_ms: i64,
        source: &str,
    ) -> impl Future<Output = Result<OptChange, StoreError>> + Send;

    /// Moves the entry of `old` to `new` (a `system` message: the user changed number).
    fn change_number(
        &self,
        old: &UserPseudonym,
        new: &Contact,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A conversation between one user and one business number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The user's last inbound message, Unix milliseconds (the 24-hour window opens there).
    pub last_inbound_at_ms: Option<i64>,
    /// When the courtesy reply to an unknown sender last went out, Unix milliseconds.
    pub courtesy_reply_at_ms: Option<i64>,
    /// What the conversation waits for (`consent:SUMMER26`, ...); flows own its values.
    pub state: Option<String>,
    /// The inbound items of this conversation route-inbound handled last.
    pub seen: SeenItems,
}

/// How many inbound items a conversation remembers as handled: a redelivery of an item older
/// than the last this many of its conversation is handled again (docs/cost.md).
pub const SEEN_ITEMS: usize = 16;

/// The last [`SEEN_ITEMS`] inbound items handled in a conversation, oldest first, each as a
/// short digest of its key (`crypto::short_digest`, 11 characters), so the conversation item
/// stays far under the 1 KB a write unit covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenItems(Vec<String>);

impl SeenItems {
    /// Whether the item with `key` is among them.
    pub fn contains(&self, key: &str) -> bool {
        let digest = crate::crypto::short_digest(key.as_bytes());
        self.0.contains(&digest)
    }

    /// These with `key` added as the newest, the oldest dropped beyond [`SEEN_ITEMS`].
    pub fn with(&self, key: &str) -> Self {
        let digest = crate::crypto::short_digest(key.as_bytes());
        let mut seen: Vec<String> = self.0.iter().filter(|d| **d != digest).cloned().collect();
        seen.push(digest);
        let excess = seen.len().saturating_sub(SEEN_ITEMS);
        seen.drain(..excess);
        Self(seen)
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As stored: the digests separated by spaces, oldest first.
    pub fn encode(&self) -> String {
        self.0.join(" ")
    }

    /// From [`SeenItems::encode`]'s form.
    pub fn decode(stored: &str) -> Self {
        Self(stored.split_whitespace().map(str::to_owned).collect())
    }
}

/// What handling an inbound item writes on its conversation, last: the item as seen and, for a
/// message that opens or keeps the window, its time.
#[derive(Debug, Clone, Copy)]
pub struct SeenMark<'a> {
    /// The item's key (the wamid).
    pub key: &'a str,
    /// The message's own time, Unix milliseconds.
    pub at_ms: i64,
    /// Whether `at_ms` moves the last inbound time (not for a `system` message).
    pub records_inbound: bool,
}

/// Meta's customer service window: free-form messages only within 24 h of the user's last message.
pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

impl Conversation {
    /// The last inbound time once `mark` is written: moved forward, never back.
    pub fn last_inbound_after(&self, mark: &SeenMark<'_>) -> Option<i64> {
        if !mark.records_inbound {
            return self.last_inbound_at_ms;
        }
        Some(
            self.last_inbound_at_ms
                .map_or(mark.at_ms, |t| t.max(mark.at_ms)),
        )
    }

    /// Whether a free-form message may be sent at `now_ms`.
    pub fn window_open(&self, now_ms: i64) -> bool {
        self.last_inbound_at_ms
            .is_some_and(|at| now_ms - at < SERVICE_WINDOW_MS)
    }
}

/// Conversation state per user and business number.
pub trait ConversationStore: Send + Sync {
    /// The conversation, if the user ever wrote to `number`.
    fn get(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
    ) -> impl Future<Output = Result<Option<Conversation>, StoreError>> + Send;

    /// Moves the last inbound time forward to `at_ms` (never back: items arrive out of order).
    fn record_inbound(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks an item handled, in one write: adds `mark.key` to the seen items and, when
    /// `mark.records_inbound`, moves the last inbound time forward to `mark.at_ms` (never back).
    /// The new seen items are built from `read`, the conversation as read before the item was
    /// handled; `false` (nothing written) when the stored seen items are no longer those of
    /// `read` or the stored time is past the new one, so a concurrent mark is never lost.
    fn mark_seen(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        read: &Conversation,
        mark: &SeenMark<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes the one courtesy reply of the window: `true` when none went out in the last
    /// `window_ms` before `now_ms` (and records this one), `false` otherwise.
    fn take_courtesy_reply(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        now_ms: i64,
        window_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets (or clears) what the conversation waits for.
    fn set_state(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        state: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `outbound.fifo`: what flows ask the one sender to send.
pub trait OutboundQueue: Send + Sync {
    /// Enqueues every request or fails (the queue deduplicates on the send key).
    fn enqueue(
        &self,
        requests: &[OutboundRequest],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Finds what a sent message was about (replies carry its wamid in `context.id`).
pub trait SentMessageLookup: Send + Sync {
    /// The send behind `message_id`, if it was one of ours.
    fn find(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<SentMessageRef>, StoreError>> + Send;
}

use crate::domain::outbound::SendKey;
use crate::domain::sending::{DeliveryState, Pace, PaceDecision, SuppressReason};

/// What the sends table keeps about one send: enough to record its sent message when only a
/// status settles it, and its template version for a late `131047`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRecord {
    /// The send.
    pub key: SendKey,
    /// The sending business number.
    pub number: BusinessNumberId,
    /// Who caused it.
    pub actor: Option<String>,
    /// `template:<name>` or the content type (`text`, `interactive`, ...).
    pub what: String,
    /// The template version to send if the free-form content fails outside the window.
    pub fallback: Option<OutboundRequest>,
}

/// Where a send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Claimed by an attempt.
    InProgress,
    /// The request may have reached Graph without its answer reaching us.
    Unknown,
    /// Graph accepted it (the answer, or a status carrying the key, said so).
    Sent,
    /// Recorded without sending (opt-out, no template, ...).
    Suppressed,
    /// Graph refused it for good.
    Failed,
}

/// A send as the sends table holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SendEntry {
    /// What was sent.
    pub record: SendRecord,
    /// Where it stands.
    pub state: SendState,
    /// The wamid, once known.
    pub message_id: Option<String>,
    /// Why it was suppressed or failed.
    pub reason: Option<String>,
}

/// The result of claiming a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClaim {
    /// Ours until the deadline: send it.
    Acquired,
    /// Already sent, suppressed or failed: acknowledge.
    Done,
    /// Another attempt holds it.
    HeldElsewhere,
    /// An earlier attempt may have been accepted; no status has settled it yet and the resend
    /// wait has not passed.
    AwaitingStatus,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by Graph.
    Sent {
        /// The wamid.
        message_id: String,
    },
    /// Recorded without sending.
    Suppressed(SuppressReason),
    /// Refused for good.
    Failed {
        /// Meta's code, when Graph answered with one.
        code: Option<i64>,
        /// Meta's title, or why the message was invalid.
        reason: String,
    },
}

/// The sends table: one claim per send key, so a send goes to Graph at most once per outcome.
pub trait SendLedger: Send + Sync {
    /// Claims `record.key` for `owner` until `deadline_ms`. An expired in-progress claim or an
    /// unknown outcome is taken over only once `resend_after_ms` has passed since it began
    /// without a status settling it.
    fn claim(
        &self,
        record: &SendRecord,
        owner: &OwnerToken,
        now_ms: i64,
        deadline_ms: i64,
        resend_after_ms: i64,
    ) -> impl Future<Output = Result<SendClaim, StoreError>> + Send;

    /// Records how the send ended, if `owner` still holds it.
    fn complete(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        outcome: &SendOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the request may have been accepted (a timeout after it left), at `at_ms`.
    fn mark_unknown(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the claim up: the request certainly did not go out.
    fn release(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A status carrying `encoded_key` (`biz_opaque_callback_data`) shows it was accepted as
    /// `message_id`: an in-progress or unknown send becomes sent. The entry, if the key is ours.
    fn settle(
        &self,
        encoded_key: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<SendEntry>, StoreError>> + Send;

    /// The entry of `encoded_key`, if any.
    fn find(
        &self,
        encoded_key: &str,
    ) -> impl Future<Output = Result<Option<SendEntry>, StoreError>> + Send;
}

/// One sent message, by wamid.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The wamid.
    pub message_id: String,
    /// The send it was.
    pub key: SendKey,
    /// The sending number.
    pub number: BusinessNumberId,
    /// Who caused it.
    pub actor: Option<String>,
    /// `template:<name>` or the content type.
    pub what: String,
    /// When Graph accepted it (or the status settling it arrived), Unix milliseconds.
    pub at_ms: i64,
}

/// Billing of a status (`statuses[].pricing`), kept for cost reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PricingInfo {
    /// `marketing`, `utility`, `service`, ...
    pub category: Option<String>,
    /// `PMP` / `CBP`.
    pub model: Option<String>,
    /// `regular`, `free_customer_service`, ...
    pub kind: Option<String>,
    /// Deprecated flag, still sent.
    pub billable: Option<bool>,
}

/// One status webhook, as the record applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The state it reports.
    pub state: DeliveryState,
    /// Meta's timestamp, Unix milliseconds.
    pub at_ms: i64,
    /// Meta's error code and title, for a failure.
    pub error: Option<(i64, String)>,
    /// Billing, when the status carries it.
    pub pricing: Option<PricingInfo>,
}

/// A sent message with what its statuses said.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedMessage {
    /// The message.
    pub message: SentMessage,
    /// The furthest state reached.
    pub state: DeliveryState,
    /// Meta's error code, if it failed.
    pub error_code: Option<i64>,
    /// Meta's error title, if it failed.
    pub error_title: Option<String>,
    /// Billing.
    pub pricing: PricingInfo,
    /// Every status applied, in arrival order.
    pub history: Vec<DeliveryState>,
}

/// The sent-messages table: wamid → what it was about and how far it got.
pub trait SentMessageStore: SentMessageLookup {
    /// Records an accepted message (statuses already applied stay).
    fn record(&self, message: &SentMessage) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies a status monotonically; `None` when `message_id` has no record.
    fn apply_status(
        &self,
        message_id: &str,
        update: &StatusUpdate,
    ) -> impl Future<Output = Result<Option<TrackedMessage>, StoreError>> + Send;

    /// The record of `message_id`.
    fn get(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<TrackedMessage>, StoreError>> + Send;
}

/// Pacing shared by every concurrent sender (per business number, per user pair).
pub trait SendPacer: Send + Sync {
    /// Reserves the next send of `bucket` at `pace`, at most `horizon_us` after `now_us`
    /// (Unix microseconds); `Busy` reserves nothing.
    fn reserve(
        &self,
        bucket: &str,
        pace: Pace,
        now_us: i64,
        horizon_us: i64,
    ) -> impl Future<Output = Result<PaceDecision, StoreError>> + Send;
}

use crate::domain::inbound::InboundItem as RoutedItem;
use crate::domain::outbound::RoutedMessage;
use crate::domain::routing::Destination;

/// The queues route-inbound hands items to (FIFO: one group per user, deduplicated on the wamid).
pub trait InboundRoutes: Send + Sync {
    /// Hands a status to track-delivery, as the item itself.
    fn status(&self, item: &RoutedItem) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Hands a message to the flow queue `to` ([`Destination::DeliveryStatus`] takes statuses only).
    fn route(
        &self,
        to: Destination,
        message: &RoutedMessage,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

use crate::domain::review::{Decision, ReviewRequest};

/// Outcome of opening a review request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Stored now (first sight of this version; an older version's request is replaced).
    New,
    /// This version's request was already stored (a redelivery): as stored.
    Existing(ReviewRequest),
}

/// Outcome of the conditional decision write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// This decision is the one.
    Written,
    /// Someone decided first, or the version moved on: the request as it now stands.
    Lost(Option<ReviewRequest>),
}

/// Review requests, one per asset (its current version), with their one decision.
pub trait ReviewStore: Send + Sync {
    /// Stores `request` unless the same version is already stored.
    fn open(
        &self,
        request: &ReviewRequest,
    ) -> impl Future<Output = Result<Opened, StoreError>> + Send;

    /// The asset's current request.
    fn get(
        &self,
        asset: &str,
    ) -> impl Future<Output = Result<Option<ReviewRequest>, StoreError>> + Send;

    /// Records `decision` if the request is still at `version` and undecided (a conditional write).
    fn decide(
        &self,
        asset: &str,
        version: &str,
        decision: &Decision,
    ) -> impl Future<Output = Result<Decided, StoreError>> + Send;

    /// Open requests whose deadline is at or before `before` (Unix seconds) and not yet reminded.
    fn due_for_reminder(
        &self,
        before: i64,
    ) -> impl Future<Output = Result<Vec<ReviewRequest>, StoreError>> + Send;

    /// Marks the reminder of `asset` at `version` sent; `false` when it already was.
    fn mark_reminded(
        &self,
        asset: &str,
        version: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

use crate::domain::expiry::{AlertWindow, PendingAlert};

/// Assets whose `field` (a date) falls between `from` and `to` (both inclusive), optionally only
/// those whose `status_field` holds `status`, sorted on `field` ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndingQuery {
    /// The date field (expiry or licence end).
    pub field: String,
    /// Earliest date.
    pub from: DamInstant,
    /// Latest date.
    pub to: DamInstant,
    /// Only assets with this status (`status_field`, value).
    pub status: Option<(String, String)>,
}

/// The DAM as the rights-expiry flow searches and writes it.
pub trait ExpiryCatalogue: Send + Sync {
    /// Assets matching `query`, one page at a time, with the fields the flow reads. The stream
    /// ends with an error when the search is cut (page cap, time): callers resume from the last
    /// date they handled.
    fn ending_between(
        &self,
        query: EndingQuery,
    ) -> impl futures::Stream<Item = Result<Vec<AssetSnapshot>, DamError>> + Send + '_;

    /// One asset's current metadata; `None` when it no longer exists.
    fn read(
        &self,
        id: &AssetId,
    ) -> impl Future<Output = Result<Option<AssetSnapshot>, DamError>> + Send;

    /// The first `limit` assets whose fields equal every `(field, value)` of `criteria`.
    fn matching(
        &self,
        criteria: &[(String, String)],
        limit: u8,
    ) -> impl Future<Output = Result<Vec<AssetSnapshot>, DamError>> + Send;

    /// Appends one line to the asset's comment log.
    fn append_comment(
        &self,
        id: &AssetId,
        line: &str,
    ) -> impl Future<Output = Result<(), DamError>> + Send;

    /// Sets one field of the asset.
    fn set_field(
        &self,
        id: &AssetId,
        field: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), DamError>> + Send;
}

/// One alert of one asset in one window, for one end date, and who it went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// The asset.
    pub asset: AssetId,
    /// The window.
    pub window: AlertWindow,
    /// The end date alerted, canonical.
    pub ends: String,
    /// Its recipients.
    pub recipients: Vec<UserPseudonym>,
}

/// Where an unfinished scan stands: the instant it scans as of, the window range it was in and
/// the last end date it handled there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanCursor {
    /// The scan's "now", Unix seconds (kept across invocations so windows stay put).
    pub as_of: i64,
    /// Index of the search (window range × date field) in progress.
    pub step: usize,
    /// The last end date handled in that search, canonical.
    #[serde(default)]
    pub after: Option<String>,
}

/// Flow 3's own table: alerts recorded once, alerts waiting in digests, the scan cursor.
pub trait ExpiryLedger: Send + Sync {
    /// Records `alert` and its `pending` digest entries in one conditional write; `false` (and
    /// nothing written) when this asset, window and end date were already alerted.
    fn record_alert(
        &self,
        alert: &AlertRecord,
        pending: &[PendingAlert],
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every alert waiting to go out in a digest.
    fn pending(&self) -> impl Future<Output = Result<Vec<PendingAlert>, StoreError>> + Send;

    /// Removes digest entries (sent, or cancelled).
    fn drop_pending(
        &self,
        alerts: &[PendingAlert],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The alerts recorded for `asset`.
    fn alerts_of(
        &self,
        asset: &AssetId,
    ) -> impl Future<Output = Result<Vec<AlertRecord>, StoreError>> + Send;

    /// Whether the action `key` (a wamid and the action) was already carried out.
    fn action_done(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Remembers that the action `key` was carried out, until `expires_at` (Unix seconds).
    fn mark_action_done(
        &self,
        key: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The unfinished scan, if any.
    fn cursor(&self) -> impl Future<Output = Result<Option<ScanCursor>, StoreError>> + Send;

    /// Saves (`Some`) or clears (`None`) the unfinished scan.
    fn save_cursor(
        &self,
        cursor: Option<&ScanCursor>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

use crate::domain::campaign::{Mark, RecipientStatus, Rollout};

/// Outcome of storing a campaign rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutOpened {
    /// Stored now (first sight of this version; an older version's rollout is replaced).
    New,
    /// This version was already rolled out (a redelivery): as stored.
    Existing(Rollout),
}

/// Campaign rollouts (flow 4): one per package (its current version), with each recipient's
/// answers, and the packages of each campaign (for the status command).
pub trait CampaignStore: Send + Sync {
    /// Stores `rollout` (its recipients marked notified) unless the same version is stored.
    fn open(
        &self,
        rollout: &Rollout,
    ) -> impl Future<Output = Result<RolloutOpened, StoreError>> + Send;

    /// The package's current rollout.
    fn get(
        &self,
        package: &str,
    ) -> impl Future<Output = Result<Option<Rollout>, StoreError>> + Send;

    /// Records `mark` of `who` on the package at `version`; `false` when the version moved on.
    /// Repeating a mark keeps its first time.
    fn record(
        &self,
        package: &str,
        version: &str,
        who: &crate::pseudonym::UserPseudonym,
        mark: &Mark,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every recipient's answers on the package's current version.
    fn statuses(
        &self,
        package: &str,
    ) -> impl Future<Output = Result<Vec<RecipientStatus>, StoreError>> + Send;

    /// The packages rolled out for `campaign` (compared without case), oldest first.
    fn packages_of(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// The sharing audit (flow 5): append-only records of who shared which asset version with whom,
/// then the delivery marks track-delivery makes.
pub trait SharingAudit: Send + Sync {
    /// Appends `record` unless its send key is already there; `false` when it was.
    fn append(
        &self,
        record: &crate::domain::sharing::AuditRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks the record of `send_key` with `message_id` and `state` at `at_ms` (each first time
    /// kept); `false` when no record has that key.
    fn mark(
        &self,
        send_key: &str,
        message_id: &str,
        state: crate::domain::sending::DeliveryState,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every record asked for on the UTC days `from` to `to` (`YYYY-MM-DD`, both included).
    fn between(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Vec<crate::domain::sharing::AuditRecord>, StoreError>> + Send;
}
