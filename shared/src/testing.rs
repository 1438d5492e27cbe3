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

use crate::domain::dam::{
    AssetId, AssetSnapshot, AssetState, DamEvent, DamInstant, DomainEvent, DomainEventKind,
};
use crate::ports::{
    AssetSource, AssetStateStore, Claim, DamError, DamEventQueue, FlowPublisher, IdempotencyStore,
    OwnerToken, Saved, StateVersion, StoreError,
};
use std::collections::BTreeMap;

fn take_failure(failures: &AtomicUsize) -> bool {
    failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("poisoned".into())
}

/// Events handed to a queue, kept in memory in order, with simulated outages.
#[derive(Debug)]
pub struct RecordedEvents<T> {
    events: Mutex<Vec<T>>,
    failures: AtomicUsize,
}

impl<T> Default for RecordedEvents<T> {
    fn default() -> Self {
        Self {
            events: Mutex::default(),
            failures: AtomicUsize::new(0),
        }
    }
}

impl<T: Clone> RecordedEvents<T> {
    /// Makes the next `n` enqueue / publish calls fail as if SQS were unreachable.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Every event held, in order.
    pub fn events(&self) -> Vec<T> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn record(&self, events: &[T]) -> Result<(), QueueError> {
        if take_failure(&self.failures) {
            return Err(QueueError::Unavailable("simulated outage".into()));
        }
        self.events
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?
            .extend(events.iter().cloned());
        Ok(())
    }
}

/// The `dam-events` queue in memory.
pub type InMemoryDamEventQueue = RecordedEvents<DamEvent>;

impl InMemoryDamEventQueue {
    /// The ids of the events held, in order.
    pub fn event_ids(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.event_id).collect()
    }
}

impl DamEventQueue for InMemoryDamEventQueue {
    async fn enqueue(&self, events: &[DamEvent]) -> Result<(), QueueError> {
        self.record(events)
    }
}

/// Flow queues in memory: keeps every published event, in order.
pub type InMemoryFlowPublisher = RecordedEvents<DomainEvent>;

impl InMemoryFlowPublisher {
    /// Kinds of the events published, in order.
    pub fn kinds(&self) -> Vec<DomainEventKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
}

impl FlowPublisher for InMemoryFlowPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), QueueError> {
        self.record(events)
    }
}

/// A DAM in memory: snapshots by id; `edited_since` reads `CoreField.EditDate` as an ISO date
/// in UTC and answers one page, oldest first; deletions are recorded with their time.
#[derive(Debug, Default)]
pub struct InMemoryAssetSource {
    assets: Mutex<BTreeMap<AssetId, AssetSnapshot>>,
    deleted: Mutex<Vec<(AssetId, DamInstant)>>,
    failures: AtomicUsize,
}

impl InMemoryAssetSource {
    /// Adds or replaces an asset.
    pub fn put(&self, snapshot: AssetSnapshot) {
        if let Ok(mut assets) = self.assets.lock() {
            assets.insert(snapshot.id.clone(), snapshot);
        }
    }

    /// Deletes an asset, as the DAM's bin would record it at `at`.
    pub fn delete(&self, id: &AssetId, at: DamInstant) {
        if let Ok(mut assets) = self.assets.lock() {
            assets.remove(id);
        }
        if let Ok(mut deleted) = self.deleted.lock() {
            deleted.push((id.clone(), at));
        }
    }

    /// Makes the next `n` calls fail as if the DAM answered 503.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn edited_page(&self, since: DamInstant) -> Result<Vec<AssetSnapshot>, DamError> {
        if take_failure(&self.failures) {
            return Err(DamError::Unavailable("simulated 503".into()));
        }
        let edited = |a: &AssetSnapshot| {
            a.field("CoreField.EditDate")
                .and_then(DamInstant::parse_canonical)
        };
        let mut page: Vec<AssetSnapshot> = self
            .assets
            .lock()
            .map_err(|_| DamError::Unavailable("poisoned".into()))?
            .values()
            .filter(|a| edited(a).is_some_and(|e| e >= since))
            .cloned()
            .collect();
        page.sort_by_key(edited);
        Ok(page)
    }
}

impl AssetSource for InMemoryAssetSource {
    async fn read(&self, id: &AssetId) -> Result<Option<AssetSnapshot>, DamError> {
        if take_failure(&self.failures) {
            return Err(DamError::Unavailable("simulated 503".into()));
        }
        Ok(self
            .assets
            .lock()
            .map_err(|_| DamError::Unavailable("poisoned".into()))?
            .get(id)
            .cloned())
    }

    fn edited_since(
        &self,
        since: DamInstant,
    ) -> impl futures::Stream<Item = Result<Vec<AssetSnapshot>, DamError>> + Send + '_ {
        futures::stream::iter([self.edited_page(since)])
    }

    async fn deleted_since(&self, since: DamInstant) -> Result<Vec<AssetId>, DamError> {
        if take_failure(&self.failures) {
            return Err(DamError::Unavailable("simulated 503".into()));
        }
        Ok(self
            .deleted
            .lock()
            .map_err(|_| DamError::Unavailable("poisoned".into()))?
            .iter()
            .filter(|(_, at)| *at >= since)
            .map(|(id, _)| id.clone())
            .collect())
    }
}

/// Asset states and the watermark in memory, with the same conditional semantics as DynamoDB.
#[derive(Debug, Default)]
pub struct InMemoryAssetStateStore {
    states: Mutex<BTreeMap<AssetId, (AssetState, StateVersion)>>,
    watermark: Mutex<Option<String>>,
}

impl AssetStateStore for InMemoryAssetStateStore {
    async fn load(&self, id: &AssetId) -> Result<Option<(AssetState, StateVersion)>, StoreError> {
        Ok(self.states.lock().map_err(poisoned)?.get(id).cloned())
    }

    async fn save(
        &self,
        id: &AssetId,
        state: &AssetState,
        expected: Option<StateVersion>,
    ) -> Result<Saved, StoreError> {
        let mut states = self.states.lock().map_err(poisoned)?;
        let stored = states.get(id).map(|(_, v)| *v);
        if stored != expected {
            return Ok(Saved::Conflict);
        }
        let next = StateVersion(expected.map_or(1, |v| v.0 + 1));
        states.insert(id.clone(), (state.clone(), next));
        Ok(Saved::Written)
    }

    async fn forget(&self, id: &AssetId) -> Result<(), StoreError> {
        self.states.lock().map_err(poisoned)?.remove(id);
        Ok(())
    }

    async fn watermark(&self) -> Result<Option<String>, StoreError> {
        Ok(self.watermark.lock().map_err(poisoned)?.clone())
    }

    async fn advance_watermark(&self, to: &str) -> Result<(), StoreError> {
        let mut watermark = self.watermark.lock().map_err(poisoned)?;
        if watermark.as_deref().is_none_or(|w| w < to) {
            *watermark = Some(to.to_owned());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ClaimRecord {
    done: bool,
    owner: String,
    deadline: i64,
}

/// Idempotency claims in memory, with the same conditions as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    claims: Mutex<BTreeMap<String, ClaimRecord>>,
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn claim(
        &self,
        key: &str,
        owner: &OwnerToken,
        now: i64,
        deadline: i64,
    ) -> Result<Claim, StoreError> {
        let mut claims = self.claims.lock().map_err(poisoned)?;
        match claims.get(key) {
            Some(record) if record.done => Ok(Claim::AlreadyDone),
            Some(record) if record.deadline >= now => Ok(Claim::HeldElsewhere),
            _ => {
                claims.insert(
                    key.to_owned(),
                    ClaimRecord {
                        done: false,
                        owner: owner.0.clone(),
                        deadline,
                    },
                );
                Ok(Claim::Acquired)
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &OwnerToken,
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut claims = self.claims.lock().map_err(poisoned)?;
        match claims.get_mut(key) {
            Some(record) if record.owner == owner.0 => {
                record.done = true;
                Ok(())
            }
            _ => Err(StoreError::NotOwner),
        }
    }

    async fn release(&self, key: &str, owner: &OwnerToken) -> Result<(), StoreError> {
        let mut claims = self.claims.lock().map_err(poisoned)?;
        match claims.get(key) {
            Some(record) if record.owner == owner.0 && !record.done => {
                claims.remove(key);
                Ok(())
            }
            _ => Err(StoreError::NotOwner),
        }
    }
}

/// Change detection wired entirely to the fakes above, with the rules of `local/connector.yaml`.
pub type InMemoryChangeDetector = crate::flows::detect_changes::ChangeDetector<
    InMemoryAssetSource,
    InMemoryAssetStateStore,
    InMemoryIdempotencyStore,
    InMemoryFlowPublisher,
>;

/// An [`InMemoryChangeDetector`] with empty fakes and default settings.
pub fn in_memory_change_detector() -> InMemoryChangeDetector {
    let config =
        crate::connector_config::ConnectorConfig::parse(include_str!("../../local/connector.yaml"))
            .unwrap_or_else(|e| panic!("local/connector.yaml must stay valid: {e}"));
    crate::flows::detect_changes::ChangeDetector {
        rules: crate::domain::dam::ChangeRules::from_settings(&config.dam),
        source: InMemoryAssetSource::default(),
        states: InMemoryAssetStateStore::default(),
        claims: InMemoryIdempotencyStore::default(),
        publisher: InMemoryFlowPublisher::default(),
        settings: crate::flows::detect_changes::DetectSettings::default(),
    }
}

use crate::lambda::sqs_batch::RecordQueues;
use aws_lambda_events::sqs::SqsMessage;

/// Dead letters and requeued records, kept in memory.
#[derive(Debug, Default)]
pub struct InMemoryRecordQueues {
    dead: Mutex<Vec<(String, String)>>,
    requeued: Mutex<Vec<String>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl InMemoryRecordQueues {
    /// `(message id, reason)` of every dead letter, in order.
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.dead.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Message ids put back on their queue.
    pub fn requeued(&self) -> Vec<String> {
        self.requeued.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// From now on the dead-letter queue is unavailable.
    pub fn refuse_dead_letters(&self) {
        self.refuse.store(true, Ordering::SeqCst);
    }
}

impl RecordQueues for InMemoryRecordQueues {
    async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable(
                "the dead-letter queue is down".into(),
            ));
        }
        if let Ok(mut dead) = self.dead.lock() {
            dead.push((
                record.message_id.clone().unwrap_or_default(),
                reason.to_owned(),
            ));
        }
        Ok(())
    }

    async fn requeue(&self, record: &SqsMessage) -> Result<(), QueueError> {
        if let Ok(mut requeued) = self.requeued.lock() {
            requeued.push(record.message_id.clone().unwrap_or_default());
        }
        Ok(())
    }
}

use crate::ports::{BusinessNumberId, MessageSender};
use crate::whatsapp::client::{SendError, SendReceipt};
use crate::whatsapp::messages::OutgoingMessage;

/// A sender that validates like Graph and keeps what it accepted, with the number it went from.
#[derive(Debug, Default)]
pub struct InMemoryMessageSender {
    sent: Mutex<Vec<(BusinessNumberId, OutgoingMessage)>>,
}

impl InMemoryMessageSender {
    /// Every accepted message, in order, with its sending number.
    pub fn sent(&self) -> Vec<(BusinessNumberId, OutgoingMessage)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl MessageSender for InMemoryMessageSender {
    async fn send(
        &self,
        from: &BusinessNumberId,
        message: &OutgoingMessage,
    ) -> Result<SendReceipt, SendError> {
        message.validate().map_err(SendError::Invalid)?;
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.push((from.clone(), message.clone()));
        Ok(SendReceipt {
            message_id: format!("wamid.in-memory-{}", sent.len()),
            wa_id: None,
            user_id: None,
            message_status: Some("accepted".into()),
        })
    }
}

use crate::domain::contact::{Contact, OptChange, OptIn, Role};
use crate::domain::outbound::{OutboundRequest, SentMessageRef};
use crate::ports::{
    ContactDirectory, Conversation, ConversationStore, OutboundQueue, SeenMark, SentMessageLookup,
};
use crate::pseudonym::UserPseudonym;
use std::collections::HashMap;

/// The contact directory in memory.
#[derive(Debug, Default)]
pub struct InMemoryContactDirectory {
    contacts: Mutex<HashMap<UserPseudonym, Contact>>,
}

impl InMemoryContactDirectory {
    /// Every entry, in pseudonym order.
    pub fn entries(&self) -> Vec<Contact> {
        let mut all: Vec<Contact> = self
            .contacts
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        all
    }
}

impl ContactDirectory for InMemoryContactDirectory {
    async fn get(&self, who: &UserPseudonym) -> Result<Option<Contact>, StoreError> {
        Ok(self.contacts.lock().map_err(poisoned)?.get(who).cloned())
    }

    async fn put(&self, contact: &Contact) -> Result<(), StoreError> {
        let mut contacts = self.contacts.lock().map_err(poisoned)?;
        let opted_out = contacts
            .get(&contact.pseudonym)
            .and_then(|c| c.opted_out_at_ms);
        let mut contact = contact.clone();
        contact.opted_out_at_ms = opted_out;
        contacts.insert(contact.pseudonym.clone(), contact);
        Ok(())
    }

    async fn put_many(&self, contacts: &[Contact]) -> Result<(), StoreError> {
        for contact in contacts {
            self.put(contact).await?;
        }
        Ok(())
    }

    async fn all(&self) -> Result<Vec<Contact>, StoreError> {
        Ok(self.entries())
    }

    async fn with_role(&self, role: Role) -> Result<Vec<Contact>, StoreError> {
        Ok(self
            .entries()
            .into_iter()
            .filter(|c| c.has_role(role))
            .collect())
    }

    async fn opt_out(&self, who: &UserPseudonym, at_ms: i64) -> Result<OptChange, StoreError> {
        let mut contacts = self.contacts.lock().map_err(poisoned)?;
        let contact = contacts
            .entry(who.clone())
            .or_insert_with(|| Contact::new(who.clone()));
        if contact.opted_out_at_ms.is_some() {
            return Ok(OptChange::Unchanged);
        }
        contact.opted_out_at_ms = Some(at_ms);
        Ok(OptChange::Changed)
    }

    async fn opt_in(
        &self,
        who: &UserPseudonym,
        at_ms: i64,
        source: &str,
    ) -> Result<OptChange, StoreError> {
        let mut contacts = self.contacts.lock().map_err(poisoned)?;
        let contact = contacts
            .entry(who.clone())
            .or_insert_with(|| Contact::new(who.clone()));
        if contact.opted_out_at_ms.take().is_none() {
            return Ok(OptChange::Unchanged);
        }
        contact.opted_in = Some(OptIn {
            at_ms,
            source: source.to_owned(),
        });
        Ok(OptChange::Changed)
    }

    async fn change_number(&self, old: &UserPseudonym, new: &Contact) -> Result<(), StoreError> {
        let mut contacts = self.contacts.lock().map_err(poisoned)?;
        contacts.remove(old);
        contacts.insert(new.pseudonym.clone(), new.clone());
        Ok(())
    }
}

/// Conversation state in memory, with the conditions of the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryConversationStore {
    conversations: Mutex<HashMap<(UserPseudonym, BusinessNumberId), Conversation>>,
    mark_failures: AtomicUsize,
}

impl InMemoryConversationStore {
    /// Makes the next `n` [`ConversationStore::mark_seen`] calls fail as if DynamoDB were
    /// unreachable (the item's other effects done, its mark not written).
    pub fn fail_next_marks(&self, n: usize) {
        self.mark_failures.store(n, Ordering::SeqCst);
    }

    fn update<T>(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        f: impl FnOnce(&mut Conversation) -> T,
    ) -> Result<T, StoreError> {
        let mut all = self.conversations.lock().map_err(poisoned)?;
        Ok(f(all.entry((who.clone(), number.clone())).or_default()))
    }
}

impl ConversationStore for InMemoryConversationStore {
    async fn get(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
    ) -> Result<Option<Conversation>, StoreError> {
        Ok(self
            .conversations
            .lock()
            .map_err(poisoned)?
            .get(&(who.clone(), number.clone()))
            .cloned())
    }

    async fn record_inbound(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.update(who, number, |c| {
            c.last_inbound_at_ms = Some(c.last_inbound_at_ms.map_or(at_ms, |t| t.max(at_ms)));
        })
    }

    async fn mark_seen(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        read: &Conversation,
        mark: &SeenMark<'_>,
    ) -> Result<bool, StoreError> {
        if take_failure(&self.mark_failures) {
            return Err(StoreError::Unavailable("simulated outage".into()));
        }
        let at = read.last_inbound_after(mark);
        self.update(who, number, |c| {
            let time_moved_past = mark.records_inbound
                && c.last_inbound_at_ms
                    .zip(at)
                    .is_some_and(|(now, new)| now > new);
            if c.seen != read.seen || time_moved_past {
                return false;
            }
            c.seen = read.seen.with(mark.key);
            if mark.records_inbound {
                c.last_inbound_at_ms = at;
            }
            true
        })
    }

    async fn take_courtesy_reply(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<bool, StoreError> {
        self.update(who, number, |c| {
            if c.courtesy_reply_at_ms
                .is_some_and(|at| now_ms - at < window_ms)
            {
                false
            } else {
                c.courtesy_reply_at_ms = Some(now_ms);
                true
            }
        })
    }

    async fn set_state(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        state: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update(who, number, |c| c.state = state.map(str::to_owned))
    }
}

/// `outbound.fifo` in memory (deduplicated on the send key, like the FIFO queue).
pub type InMemoryOutboundQueue = RecordedEvents<OutboundRequest>;

impl OutboundQueue for InMemoryOutboundQueue {
    async fn enqueue(&self, requests: &[OutboundRequest]) -> Result<(), QueueError> {
        let held: Vec<_> = self.events().into_iter().map(|r| r.key).collect();
        let fresh: Vec<OutboundRequest> = requests
            .iter()
            .filter(|r| !held.contains(&r.key))
            .cloned()
            .collect();
        self.record(&fresh)
    }
}

/// Sent-message records in memory, by wamid.
#[derive(Debug, Default)]
pub struct InMemorySentMessages {
    sent: Mutex<HashMap<String, SentMessageRef>>,
}

impl InMemorySentMessages {
    /// Remembers a sent message.
    pub fn remember(&self, sent: SentMessageRef) {
        if let Ok(mut all) = self.sent.lock() {
            all.insert(sent.message_id.clone(), sent);
        }
    }
}

impl SentMessageLookup for InMemorySentMessages {
    async fn find(&self, message_id: &str) -> Result<Option<SentMessageRef>, StoreError> {
        Ok(self.sent.lock().map_err(poisoned)?.get(message_id).cloned())
    }
}

use crate::domain::outbound::SendKey;
use crate::domain::sending::{DeliveryState, Pace, PaceDecision};
use crate::ports::{
    PricingInfo, SendClaim, SendEntry, SendLedger, SendOutcome, SendPacer, SendRecord, SendState,
    SentMessage, SentMessageStore, StatusUpdate, TrackedMessage,
};

#[derive(Debug, Clone)]
struct LedgerItem {
    entry: SendEntry,
    owner: String,
    deadline_ms: i64,
    since_ms: i64,
}

/// The sends table in memory, with the conditions of the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemorySendLedger {
    items: Mutex<HashMap<String, LedgerItem>>,
    failures: AtomicUsize,
}

impl InMemorySendLedger {
    /// Every entry, by encoded key.
    pub fn entries(&self) -> Vec<SendEntry> {
        self.items
            .lock()
            .map(|i| i.values().map(|v| v.entry.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes the next `n` calls fail as if DynamoDB were unreachable.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if take_failure(&self.failures) {
            return Err(StoreError::Unavailable("simulated outage".into()));
        }
        Ok(())
    }

    fn with_owned(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        f: impl FnOnce(&mut LedgerItem),
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.items.lock().map_err(poisoned)?;
        match items.get_mut(&key.encode()) {
            Some(item) if item.owner == owner.0 => {
                f(item);
                Ok(())
            }
            _ => Err(StoreError::NotOwner),
        }
    }
}

impl SendLedger for InMemorySendLedger {
    async fn claim(
        &self,
        record: &SendRecord,
        owner: &OwnerToken,
        now_ms: i64,
        deadline_ms: i64,
        resend_after_ms: i64,
    ) -> Result<SendClaim, StoreError> {
        self.check()?;
        let mut items = self.items.lock().map_err(poisoned)?;
        let key = record.key.encode();
        if let Some(item) = items.get(&key) {
            let stale = item.since_ms + resend_after_ms <= now_ms;
            match item.entry.state {
                SendState::Sent | SendState::Suppressed | SendState::Failed => {
                    return Ok(SendClaim::Done);
                }
                SendState::InProgress if item.deadline_ms >= now_ms => {
                    return Ok(SendClaim::HeldElsewhere);
                }
                SendState::InProgress | SendState::Unknown if !stale => {
                    return Ok(SendClaim::AwaitingStatus);
                }
                SendState::InProgress | SendState::Unknown => {}
            }
        }
        items.insert(
            key,
            LedgerItem {
                entry: SendEntry {
                    record: record.clone(),
                    state: SendState::InProgress,
                    message_id: None,
                    reason: None,
                },
                owner: owner.0.clone(),
                deadline_ms,
                since_ms: now_ms,
            },
        );
        Ok(SendClaim::Acquired)
    }

    async fn complete(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        outcome: &SendOutcome,
    ) -> Result<(), StoreError> {
        self.with_owned(key, owner, |item| match outcome {
            SendOutcome::Sent { message_id } => {
                item.entry.state = SendState::Sent;
                item.entry.message_id = Some(message_id.clone());
            }
            SendOutcome::Suppressed(reason) => {
                item.entry.state = SendState::Suppressed;
                item.entry.reason = Some(reason.as_str().to_owned());
            }
            SendOutcome::Failed { code, reason } => {
                item.entry.state = SendState::Failed;
                item.entry.reason = Some(match code {
                    Some(code) => format!("{code}: {reason}"),
                    None => reason.clone(),
                });
            }
        })
    }

    async fn mark_unknown(
        &self,
        key: &SendKey,
        owner: &OwnerToken,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.with_owned(key, owner, |item| {
            item.entry.state = SendState::Unknown;
            item.since_ms = at_ms;
        })
    }

    async fn release(&self, key: &SendKey, owner: &OwnerToken) -> Result<(), StoreError> {
        self.check()?;
        let mut items = self.items.lock().map_err(poisoned)?;
        let encoded = key.encode();
        match items.get(&encoded) {
            Some(item) if item.owner == owner.0 && item.entry.state == SendState::InProgress => {
                items.remove(&encoded);
                Ok(())
            }
            _ => Err(StoreError::NotOwner),
        }
    }

    async fn settle(
        &self,
        encoded_key: &str,
        message_id: &str,
    ) -> Result<Option<SendEntry>, StoreError> {
        self.check()?;
        let mut items = self.items.lock().map_err(poisoned)?;
        Ok(items.get_mut(encoded_key).map(|item| {
            if matches!(item.entry.state, SendState::InProgress | SendState::Unknown) {
                item.entry.state = SendState::Sent;
                item.entry.message_id = Some(message_id.to_owned());
            }
            item.entry.clone()
        }))
    }

    async fn find(&self, encoded_key: &str) -> Result<Option<SendEntry>, StoreError> {
        self.check()?;
        Ok(self
            .items
            .lock()
            .map_err(poisoned)?
            .get(encoded_key)
            .map(|i| i.entry.clone()))
    }
}

/// Sent-message records in memory, with the monotonic status rule of the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemorySentMessageStore {
    records: Mutex<HashMap<String, TrackedMessage>>,
}

impl InMemorySentMessageStore {
    /// Every record.
    pub fn all(&self) -> Vec<TrackedMessage> {
        self.records
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl SentMessageLookup for InMemorySentMessageStore {
    async fn find(&self, message_id: &str) -> Result<Option<SentMessageRef>, StoreError> {
        Ok(self
            .records
            .lock()
            .map_err(poisoned)?
            .get(message_id)
            .map(|t| SentMessageRef {
                message_id: t.message.message_id.clone(),
                key: t.message.key.clone(),
            }))
    }
}

impl SentMessageStore for InMemorySentMessageStore {
    async fn record(&self, message: &SentMessage) -> Result<(), StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        records
            .entry(message.message_id.clone())
            .and_modify(|t| t.message = message.clone())
            .or_insert_with(|| TrackedMessage {
                message: message.clone(),
                state: DeliveryState::Accepted,
                error_code: None,
                error_title: None,
                pricing: PricingInfo::default(),
                history: Vec::new(),
            });
        Ok(())
    }

    async fn apply_status(
        &self,
        message_id: &str,
        update: &StatusUpdate,
    ) -> Result<Option<TrackedMessage>, StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        Ok(records.get_mut(message_id).map(|t| {
            let merged = DeliveryState::merge(Some(t.state), update.state);
            if merged != t.state {
                t.state = merged;
                if let Some((code, title)) = &update.error {
                    t.error_code = Some(*code);
                    t.error_title = Some(title.clone());
                }
            }
            if let Some(pricing) = &update.pricing {
                t.pricing = pricing.clone();
            }
            t.history.push(update.state);
            t.clone()
        }))
    }

    async fn get(&self, message_id: &str) -> Result<Option<TrackedMessage>, StoreError> {
        Ok(self
            .records
            .lock()
            .map_err(poisoned)?
            .get(message_id)
            .cloned())
    }
}

/// Pacing buckets in memory (the same algorithm as the DynamoDB counters).
#[derive(Debug, Default)]
pub struct InMemoryPacer {
    buckets: Mutex<HashMap<String, i64>>,
}

impl SendPacer for InMemoryPacer {
    async fn reserve(
        &self,
        bucket: &str,
        pace: Pace,
        now_us: i64,
        horizon_us: i64,
    ) -> Result<PaceDecision, StoreError> {
        let mut buckets = self.buckets.lock().map_err(poisoned)?;
        let decision =
            crate::domain::sending::pace(pace, buckets.get(bucket).copied(), now_us, horizon_us);
        if let PaceDecision::Reserve { tat, .. } = decision {
            buckets.insert(bucket.to_owned(), tat);
        }
        Ok(decision)
    }
}

use crate::domain::routing::Destination;

/// One item route-inbound handed on, as the fake queues keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRecord {
    /// The queue.
    pub to: Destination,
    /// The item's key (the wamid, or `wamid:status`).
    pub key: String,
    /// The user.
    pub user: Option<UserPseudonym>,
    /// What the message answers.
    pub answers: Option<SendKey>,
}

/// route-inbound's output queues in memory (deduplicated per queue on the key, like the FIFO queues).
pub type InMemoryInboundRoutes = RecordedEvents<RoutedRecord>;

impl InMemoryInboundRoutes {
    /// The keys handed to `to`, in order.
    pub fn keys_on(&self, to: Destination) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|r| r.to == to)
            .map(|r| r.key)
            .collect()
    }

    fn record_once(&self, record: RoutedRecord) -> Result<(), QueueError> {
        let held = self
            .events()
            .iter()
            .any(|r| r.to == record.to && r.key == record.key);
        self.record(if held {
            &[]
        } else {
            std::slice::from_ref(&record)
        })
    }
}

impl crate::ports::InboundRoutes for InMemoryInboundRoutes {
    async fn status(&self, item: &InboundItem) -> Result<(), QueueError> {
        self.record_once(RoutedRecord {
            to: Destination::DeliveryStatus,
            key: item.key.clone(),
            user: item.user.clone(),
            answers: None,
        })
    }

    async fn route(
        &self,
        to: Destination,
        message: &crate::domain::outbound::RoutedMessage,
    ) -> Result<(), QueueError> {
        self.record_once(RoutedRecord {
            to,
            key: message.key.clone(),
            user: Some(message.user.clone()),
            answers: message.answers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::messages::Recipient;

    #[tokio::test]
    async fn the_fake_sender_keeps_the_number_each_message_went_from() {
        let sender = InMemoryMessageSender::default();
        let field = BusinessNumberId::parse("106540352242922").expect("digits");
        let ugc = BusinessNumberId::parse("106540352242923").expect("digits");
        let to = Recipient::phone("+13125550147").expect("number");
        sender
            .send(
                &field,
                &OutgoingMessage::text(to.clone(), "Received 3 photos"),
            )
            .await
            .expect("sent");
        sender
            .send(&ugc, &OutgoingMessage::text(to, "Thanks!"))
            .await
            .expect("sent");
        let from: Vec<String> = sender
            .sent()
            .iter()
            .map(|(n, _)| n.as_str().to_owned())
            .collect();
        assert_eq!(from, ["106540352242922", "106540352242923"]);
        assert!(BusinessNumberId::parse("+1555").is_none());
    }
}

use crate::domain::review::{Decision, ReviewRequest};
use crate::ports::{Decided, Opened, ReviewStore};

/// Review requests in memory, with the same conditions as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct InMemoryReviewStore {
    requests: Mutex<BTreeMap<String, ReviewRequest>>,
}

impl InMemoryReviewStore {
    /// The asset's request as stored.
    pub fn request(&self, asset: &str) -> Option<ReviewRequest> {
        self.requests.lock().ok()?.get(asset).cloned()
    }
}

impl ReviewStore for InMemoryReviewStore {
    async fn open(&self, request: &ReviewRequest) -> Result<Opened, StoreError> {
        let mut requests = self.requests.lock().map_err(poisoned)?;
        match requests.get(&request.asset) {
            Some(stored) if stored.version == request.version => {
                Ok(Opened::Existing(stored.clone()))
            }
            _ => {
                requests.insert(request.asset.clone(), request.clone());
                Ok(Opened::New)
            }
        }
    }

    async fn get(&self, asset: &str) -> Result<Option<ReviewRequest>, StoreError> {
        Ok(self.requests.lock().map_err(poisoned)?.get(asset).cloned())
    }

    async fn decide(
        &self,
        asset: &str,
        version: &str,
        decision: &Decision,
    ) -> Result<Decided, StoreError> {
        let mut requests = self.requests.lock().map_err(poisoned)?;
        match requests.get_mut(asset) {
            Some(stored) if stored.version == version && stored.decision.is_none() => {
                stored.decision = Some(decision.clone());
                stored.deadline = None;
                Ok(Decided::Written)
            }
            other => Ok(Decided::Lost(other.map(|r| r.clone()))),
        }
    }

    async fn due_for_reminder(&self, before: i64) -> Result<Vec<ReviewRequest>, StoreError> {
        Ok(self
            .requests
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|r| {
                r.decision.is_none() && !r.reminded && r.deadline.is_some_and(|d| d <= before)
            })
            .cloned()
            .collect())
    }

    async fn mark_reminded(&self, asset: &str, version: &str) -> Result<bool, StoreError> {
        let mut requests = self.requests.lock().map_err(poisoned)?;
        Ok(match requests.get_mut(asset) {
            Some(stored) if stored.version == version && !stored.reminded => {
                stored.reminded = true;
                true
            }
            _ => false,
        })
    }
}

/// The sharing audit in memory: records by send key, marks keeping their first time.
#[derive(Debug, Default)]
pub struct InMemorySharingAudit {
    records: Mutex<std::collections::BTreeMap<String, crate::domain::sharing::AuditRecord>>,
}

impl InMemorySharingAudit {
    /// Every record, by send key.
    pub fn records(&self) -> Vec<crate::domain::sharing::AuditRecord> {
        self.records
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl crate::ports::SharingAudit for InMemorySharingAudit {
    async fn append(
        &self,
        record: &crate::domain::sharing::AuditRecord,
    ) -> Result<bool, crate::ports::StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        if records.contains_key(&record.send_key) {
            return Ok(false);
        }
        records.insert(record.send_key.clone(), record.clone());
        Ok(true)
    }

    async fn mark(
        &self,
        send_key: &str,
        message_id: &str,
        state: crate::domain::sending::DeliveryState,
        at_ms: i64,
    ) -> Result<bool, crate::ports::StoreError> {
        use crate::domain::sending::DeliveryState;
        let mut records = self.records.lock().map_err(poisoned)?;
        let Some(record) = records.get_mut(send_key) else {
            return Ok(false);
        };
        record
            .message_id
            .get_or_insert_with(|| message_id.to_owned());
        let (sent, delivered, read) = match state {
            DeliveryState::Sent => (true, false, false),
            DeliveryState::Delivered => (true, true, false),
            DeliveryState::Read => (true, true, true),
            DeliveryState::Accepted | DeliveryState::Failed => (false, false, false),
        };
        if sent {
            record.sent_at_ms.get_or_insert(at_ms);
        }
        if delivered {
            record.delivered_at_ms.get_or_insert(at_ms);
        }
        if read {
            record.read_at_ms.get_or_insert(at_ms);
        }
        Ok(true)
    }

    async fn between(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::domain::sharing::AuditRecord>, crate::ports::StoreError> {
        let days = crate::adapters::sharing_audit::days(from, to).unwrap_or_default();
        Ok(self
            .records()
            .into_iter()
            .filter(|r| days.contains(&crate::domain::sharing::day_of(r.requested_at_ms / 1000)))
            .collect())
    }
}
