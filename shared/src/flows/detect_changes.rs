//! Change detection: read the asset, compare it with the last known state, publish the domain
//! events of the difference, remember the new state. Driven by DAM events (claimed once per event
//! id) and by the scheduled poll of recently edited assets (for webhooks that never arrived).

use crate::domain::dam::{
    AssetId, AssetSnapshot, ChangeRules, DamEvent, DamEventKind, DamInstant, DomainEvent,
};
use crate::error::Retryable;
use crate::ports::{
    AssetSource, AssetStateStore, Claim, DamError, FlowPublisher, IdempotencyStore, OwnerToken,
    QueueError, Saved, StoreError,
};
use futures::StreamExt as _;
use time::OffsetDateTime;
use time::macros::format_description;

/// Conditional saves attempted before giving the event back to the queue.
const SAVE_ATTEMPTS: usize = 3;

/// Tunables.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    /// How long a completed claim is kept (redeliveries inside it are recognised).
    pub completed_ttl_seconds: i64,
    /// How far back the very first poll looks.
    pub first_poll_lookback_seconds: i64,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            completed_ttl_seconds: 7 * 24 * 3600,
            first_poll_lookback_seconds: 3600,
        }
    }
}

/// What the detector needs.
#[derive(Debug)]
pub struct ChangeDetector<S, T, I, P> {
    /// Field names and values from the connector configuration.
    pub rules: ChangeRules,
    /// The DAM.
    pub source: S,
    /// Last known states and the poll watermark.
    pub states: T,
    /// Claims on DAM event ids.
    pub claims: I,
    /// The flow queues.
    pub publisher: P,
    /// Tunables.
    pub settings: DetectSettings,
}

/// What handling one DAM event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The event id was already handled.
    Duplicate,
    /// Compared; this many domain events published.
    Reconciled {
        /// Domain events published.
        published: usize,
    },
    /// The asset no longer exists in the DAM.
    Gone,
    /// A deletion: the state was dropped.
    Forgotten,
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Assets reconciled.
    pub scanned: usize,
    /// Assets of the page in hand left for the next poll (the time budget ran out).
    pub remaining: usize,
    /// Domain events published (deletions included).
    pub published: usize,
    /// Deleted assets whose state was dropped.
    pub deleted: usize,
    /// The watermark after the poll (canonical UTC `yyyy-MM-ddTHH:mm:ss`).
    pub watermark: Option<String>,
}

/// Why an event or a poll could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// Reading the DAM failed.
    #[error("reading the asset failed")]
    Dam(#[from] DamError),
    /// The state or claims store failed.
    #[error("the state store failed")]
    Store(#[from] StoreError),
    /// Publishing to a flow queue failed.
    #[error("publishing domain events failed")]
    Queue(#[from] QueueError),
    /// Another worker holds this event's claim.
    #[error("another worker is handling this event")]
    HeldElsewhere,
    /// The asset's state kept changing under us.
    #[error("the asset state kept changing during {SAVE_ATTEMPTS} attempts")]
    Contention,
}

impl Retryable for DetectError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Dam(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::HeldElsewhere | Self::Contention => true,
        }
    }
}

/// The edit-date format of Orange Logic's API (`yyyy-MM-ddTHH:mm:ss`, the documented default).
pub fn dam_timestamp(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

impl<S, T, I, P> ChangeDetector<S, T, I, P>
where
    S: AssetSource,
    T: AssetStateStore,
    I: IdempotencyStore,
    P: FlowPublisher,
{
    /// Handles one DAM event once: claims its id until `deadline` (Unix seconds, the invocation's
    /// deadline), reconciles the asset, completes the claim; releases it on failure.
    #[tracing::instrument(name = "detect_asset_changes", skip_all, fields(asset = %event.asset, event_id = %event.event_id))]
    pub async fn handle_event(
        &self,
        event: &DamEvent,
        now: i64,
        deadline: i64,
    ) -> Result<Handled, DetectError> {
        let key = format!("dam-event#{}", event.event_id);
        let owner = OwnerToken(crate::crypto::random_hex(16));
        match self.claims.claim(&key, &owner, now, deadline).await? {
            Claim::AlreadyDone => {
                tracing::info!("duplicate DAM event skipped");
                return Ok(Handled::Duplicate);
            }
            Claim::HeldElsewhere => return Err(DetectError::HeldElsewhere),
            Claim::Acquired => {}
        }
        let result = self.handle_claimed(event).await;
        match &result {
            Ok(_) => {
                match self
                    .claims
                    .complete(&key, &owner, now + self.settings.completed_ttl_seconds)
                    .await
                {
                    Ok(()) => {}
                    // Our deadline passed and another worker took over; the work is done either way.
                    Err(StoreError::NotOwner) => {
                        tracing::warn!("claim taken over before completion")
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(_) => {
                if let Err(error) = self.claims.release(&key, &owner).await {
                    tracing::warn!(error = %crate::error::chain(&error), "could not release the claim; it expires at its deadline");
                }
            }
        }
        result
    }

    async fn handle_claimed(&self, event: &DamEvent) -> Result<Handled, DetectError> {
        if event.kind == DamEventKind::Deleted {
            self.forget(&event.asset).await?;
            return Ok(Handled::Forgotten);
        }
        match self.source.read(&event.asset).await? {
            None => {
                // Gone without a deletion event reaching us: the same as a deletion.
                self.forget(&event.asset).await?;
                Ok(Handled::Gone)
            }
            Some(snapshot) => Ok(Handled::Reconciled {
                published: self.reconcile(&snapshot).await?,
            }),
        }
    }

    /// Drops a deleted asset's state, telling the flows first (so a failure leaves the state, and
    /// the retry tells them again). Returns whether there was anything to drop.
    pub async fn forget(&self, id: &AssetId) -> Result<bool, DetectError> {
        if self.states.load(id).await?.is_none() {
            return Ok(false);
        }
        let event = self.rules.deleted(id);
        self.publisher.publish(std::slice::from_ref(&event)).await?;
        log_published(std::slice::from_ref(&event));
        self.states.forget(id).await?;
        Ok(true)
    }

    /// Compares `snapshot` with the stored state, publishes the difference, saves the new state
    /// (conditionally on the version read). Returns how many domain events were published.
    pub async fn reconcile(&self, snapshot: &AssetSnapshot) -> Result<usize, DetectError> {
        let current = self.rules.observe(snapshot);
        for _ in 0..SAVE_ATTEMPTS {
            let stored = self.states.load(&snapshot.id).await?;
            if let Some((previous, _)) = &stored {
                if *previous == current {
                    return Ok(0);
                }
                if let (Some(seen), Some(now)) = (
                    previous
                        .edited_at
                        .as_deref()
                        .and_then(|t| self.stored_instant(t)),
                    current
                        .edited_at
                        .as_deref()
                        .and_then(|t| self.stored_instant(t)),
                ) && seen > now
                {
                    // An older read (a slow poll) must not roll the state back.
                    return Ok(0);
                }
            }
            let events = self
                .rules
                .detect(snapshot, stored.as_ref().map(|(s, _)| s), &current);
            if !events.is_empty() {
                self.publisher.publish(&events).await?;
                log_published(&events);
            }
            match self
                .states
                .save(&snapshot.id, &current, stored.map(|(_, v)| v))
                .await?
            {
                Saved::Written => return Ok(events.len()),
                Saved::Conflict => continue,
            }
        }
        Err(DetectError::Contention)
    }

    /// Drops the state of assets deleted since the watermark, then reconciles the assets edited
    /// since it (or since the first-poll lookback) page by page, oldest first, moving the
    /// watermark forward as it goes (every [`WATERMARK_EVERY`] assets, at the end of each page, and
    /// before returning an error). It stops once `budget` is spent, and the source may end the
    /// pages early (a page cap): a backlog is then worked off over several polls. The watermark is
    /// the latest edit instant reconciled and never moves back; the criterion is inclusive, so
    /// assets sharing its second are seen again (harmlessly).
    #[tracing::instrument(name = "poll_recently_edited_assets", skip_all)]
    pub async fn poll(
        &self,
        now: OffsetDateTime,
        budget: std::time::Duration,
    ) -> Result<PollReport, DetectError> {
        let started = std::time::Instant::now();
        let lookback = || {
            DamInstant::from_unix_seconds(now.unix_timestamp())
                .map(|n| n.minus_seconds(self.settings.first_poll_lookback_seconds))
        };
        let stored = self.states.watermark().await?;
        let since = match stored.as_deref().map(|w| self.stored_instant(w)) {
            Some(Some(watermark)) => Some(watermark),
            Some(None) => {
                tracing::warn!(
                    "the stored watermark is not a date; polling from the first-poll lookback"
                );
                lookback()
            }
            None => lookback(),
        };
        let Some(since) = since else {
            return Err(DetectError::Store(StoreError::Rejected {
                reason: "the poll start is not a representable instant".into(),
            }));
        };
        let deleted = self.forget_deleted(since).await?;
        let mut report = PollReport {
            scanned: 0,
            remaining: 0,
            published: deleted,
            deleted,
            watermark: None,
        };
        let mut reached: Option<DamInstant> = None;
        let mut pages = std::pin::pin!(self.source.edited_since(since));
        'pages: while let Some(page) = pages.next().await {
            let mut page = match page {
                Ok(page) => page,
                Err(error) => {
                    self.save_watermark(reached).await?;
                    return Err(error.into());
                }
            };
            page.sort_by_key(|a| self.rules.edited_at(a));
            for (index, asset) in page.iter().enumerate() {
                if report.scanned > 0 && started.elapsed() >= budget {
                    report.remaining = page.len() - index;
                    break 'pages;
                }
                match self.reconcile(asset).await {
                    Ok(n) => report.published += n,
                    Err(error) => {
                        self.save_watermark(reached).await?;
                        return Err(error);
                    }
                }
                report.scanned += 1;
                match self.rules.edited_at(asset) {
                    Some(at) => reached = reached.max(Some(at)),
                    None => tracing::warn!(
                        asset = %asset.id,
                        field = %self.rules.edit_date_field(),
                        "edit date missing or in no configured format; the watermark ignores this asset"
                    ),
                }
                if report.scanned.is_multiple_of(WATERMARK_EVERY) {
                    self.save_watermark(reached).await?;
                }
            }
            self.save_watermark(reached).await?;
        }
        self.save_watermark(reached).await?;
        report.watermark = reached.max(Some(since)).map(DamInstant::canonical);
        tracing::info!(
            scanned = report.scanned,
            remaining = report.remaining,
            published = report.published,
            deleted = report.deleted,
            since = %since.canonical(),
            "poll of recently edited assets done"
        );
        Ok(report)
    }

    /// An instant the connector stored: canonical (UTC), or, from before dates were normalised,
    /// the DAM's own text.
    fn stored_instant(&self, text: &str) -> Option<DamInstant> {
        DamInstant::parse_canonical(text).or_else(|| self.rules.dates().parse(text))
    }

    async fn save_watermark(&self, reached: Option<DamInstant>) -> Result<(), DetectError> {
        if let Some(reached) = reached {
            self.states.advance_watermark(&reached.canonical()).await?;
        }
        Ok(())
    }

    /// Forgets the assets deleted since `since`. A retryable failure fails the poll (nothing
    /// moves, the next poll asks again); a refusal (the instance lacks the call, or refuses its
    /// parameters) is logged as an alarm and the edit poll goes on without it.
    async fn forget_deleted(&self, since: DamInstant) -> Result<usize, DetectError> {
        let deleted = match self.source.deleted_since(since).await {
            Ok(deleted) => deleted,
            Err(error) if error.is_retryable() => return Err(error.into()),
            Err(error) => {
                tracing::error!(
                    metric = "dam_deletions_poll_refused",
                    error = %crate::error::chain(&error),
                    "the DAM refused the poll of deleted objects; deletions are only seen by webhook"
                );
                return Ok(0);
            }
        };
        let mut forgotten = 0;
        for id in &deleted {
            if self.forget(id).await? {
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

/// Assets reconciled between two watermark writes during a poll.
pub const WATERMARK_EVERY: usize = 100;

fn log_published(events: &[DomainEvent]) {
    for event in events {
        let kind = serde_json::to_value(&event.kind)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        tracing::info!(asset = %event.asset, kind = %kind, event_id = %event.id, "domain event published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dam::{AssetId, DomainEventKind};

    type Detector = crate::testing::InMemoryChangeDetector;

    fn detector() -> Detector {
        crate::testing::in_memory_change_detector()
    }

    fn asset(status: &str, edited_at: &str) -> AssetSnapshot {
        let fields = [
            ("CoreField.Title", "Bridge"),
            ("CoreField.Photographer", "A. Field"),
            ("Custom.Campaign", "SUMMER26"),
            ("CoreField.Status", status),
            ("CoreField.EditDate", edited_at),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        AssetSnapshot {
            id: AssetId::parse("A1").expect("id"),
            fields,
        }
    }

    fn edited(event_id: &str) -> DamEvent {
        DamEvent {
            event_id: event_id.into(),
            kind: DamEventKind::Edited,
            asset: AssetId::parse("A1").expect("id"),
            occurred_at: None,
        }
    }

    #[tokio::test]
    async fn the_same_event_twice_publishes_one_domain_event() {
        let detector = detector();
        detector.source.put(asset("Draft", "2026-11-26T10:00:00"));
        detector
            .handle_event(&edited("e0"), 0, 60)
            .await
            .expect("first sight");
        detector
            .source
            .put(asset("Ready for Review", "2026-11-26T10:05:00"));
        let first = detector.handle_event(&edited("e1"), 1, 60).await;
        let second = detector.handle_event(&edited("e1"), 2, 60).await;
        assert_eq!(first.expect("ok"), Handled::Reconciled { published: 1 });
        assert_eq!(second.expect("ok"), Handled::Duplicate);
        assert_eq!(
            detector.publisher.kinds(),
            [DomainEventKind::ReadyForReview]
        );
    }

    #[tokio::test]
    async fn two_events_for_one_edit_publish_once() {
        let detector = detector();
        detector
            .source
            .put(asset("Ready for Review", "2026-11-26T10:05:00"));
        detector
            .handle_event(&edited("e1"), 1, 60)
            .await
            .expect("ok");
        let again = detector.handle_event(&edited("e2"), 2, 60).await;
        assert_eq!(again.expect("ok"), Handled::Reconciled { published: 0 });
        assert_eq!(detector.publisher.kinds().len(), 1);
    }

    #[tokio::test]
    async fn a_claim_held_by_another_worker_is_retried_later() {
        let detector = detector();
        detector.source.put(asset("Draft", "2026-11-26T10:00:00"));
        let other = OwnerToken("other".into());
        detector
            .claims
            .claim("dam-event#e1", &other, 0, 100)
            .await
            .expect("claim");
        let err = detector
            .handle_event(&edited("e1"), 10, 60)
            .await
            .expect_err("held");
        assert!(err.is_retryable());
        // After the other worker's deadline the claim is taken over.
        assert!(detector.handle_event(&edited("e1"), 101, 160).await.is_ok());
    }

    #[tokio::test]
    async fn a_publish_failure_releases_the_claim_and_saves_nothing() {
        let detector = detector();
        detector
            .source
            .put(asset("Ready for Review", "2026-11-26T10:05:00"));
        detector.publisher.fail_next(1);
        let err = detector
            .handle_event(&edited("e1"), 1, 60)
            .await
            .expect_err("outage");
        assert!(err.is_retryable());
        let retried = detector.handle_event(&edited("e1"), 2, 60).await;
        assert_eq!(retried.expect("ok"), Handled::Reconciled { published: 1 });
    }

    #[tokio::test]
    async fn an_unreachable_dam_is_retryable() {
        let detector = detector();
        detector.source.fail_next(1);
        let err = detector
            .handle_event(&edited("e1"), 1, 60)
            .await
            .expect_err("outage");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn the_poll_finds_a_change_whose_webhook_was_lost_and_advances_the_watermark() {
        let detector = detector();
        let now = OffsetDateTime::now_utc();
        let edited_at = dam_timestamp(now - time::Duration::minutes(2));
        detector.source.put(asset("Ready for Review", &edited_at));
        let report = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!((report.scanned, report.published), (1, 1));
        assert_eq!(report.watermark.as_deref(), Some(edited_at.as_str()));
        let again = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(again.published, 0, "the same change is not reported twice");
        assert_eq!(detector.publisher.kinds().len(), 1);
    }

    #[tokio::test]
    async fn a_deletion_forgets_the_asset_and_tells_the_rights_expiry_flow() {
        let detector = detector();
        detector
            .source
            .put(asset("Ready for Review", "2026-11-26T10:05:00"));
        detector
            .handle_event(&edited("e1"), 1, 60)
            .await
            .expect("ok");
        let deleted = DamEvent {
            kind: DamEventKind::Deleted,
            ..edited("e2")
        };
        assert_eq!(
            detector.handle_event(&deleted, 2, 60).await.expect("ok"),
            Handled::Forgotten
        );
        let id = AssetId::parse("A1").expect("id");
        assert!(detector.states.load(&id).await.expect("load").is_none());
        assert_eq!(
            detector.publisher.kinds(),
            [
                DomainEventKind::ReadyForReview,
                DomainEventKind::AssetDeleted
            ]
        );
        let again = DamEvent {
            kind: DamEventKind::Deleted,
            ..edited("e3")
        };
        detector.handle_event(&again, 3, 60).await.expect("ok");
        assert_eq!(
            detector.publisher.kinds().len(),
            2,
            "an asset already forgotten is not announced twice"
        );
    }

    #[tokio::test]
    async fn the_poll_drops_the_state_of_assets_deleted_since_the_watermark() {
        let detector = detector();
        let now = OffsetDateTime::now_utc();
        detector.source.put(asset(
            "Ready for Review",
            &dam_timestamp(now - time::Duration::minutes(5)),
        ));
        detector.poll(now, BUDGET).await.expect("poll");
        let id = AssetId::parse("A1").expect("id");
        let deleted_at = DamInstant::from_unix_seconds(now.unix_timestamp()).expect("now");
        detector.source.delete(&id, deleted_at);
        let report = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!((report.deleted, report.published), (1, 1));
        assert!(detector.states.load(&id).await.expect("load").is_none());
        assert_eq!(
            detector.publisher.kinds(),
            [
                DomainEventKind::ReadyForReview,
                DomainEventKind::AssetDeleted
            ]
        );
    }

    #[tokio::test]
    async fn an_asset_gone_when_read_is_forgotten_like_a_deletion() {
        let detector = detector();
        detector
            .reconcile(&asset("Ready for Review", "2026-11-26T10:05:00"))
            .await
            .expect("ok");
        let id = AssetId::parse("A1").expect("id");
        // Not in the source: the DAM answers "no such record".
        assert_eq!(
            detector
                .handle_event(&edited("e9"), 1, 60)
                .await
                .expect("ok"),
            Handled::Gone
        );
        assert!(detector.states.load(&id).await.expect("load").is_none());
    }

    #[tokio::test]
    async fn the_watermark_never_moves_back() {
        let detector = detector();
        let now = OffsetDateTime::now_utc();
        detector
            .states
            .advance_watermark(&dam_timestamp(now - time::Duration::minutes(1)))
            .await
            .expect("watermark");
        detector.source.put(asset(
            "Draft",
            &dam_timestamp(now - time::Duration::minutes(30)),
        ));
        let report = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(report.scanned, 0, "older than the watermark");
        assert_eq!(
            report.watermark,
            Some(dam_timestamp(now - time::Duration::minutes(1)))
        );
    }

    const BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

    #[tokio::test]
    async fn a_backlog_larger_than_the_time_budget_is_worked_off_over_several_polls() {
        let detector = detector();
        let now = OffsetDateTime::now_utc();
        for n in 0..3_i64 {
            let mut snapshot = asset(
                "Ready for Review",
                &dam_timestamp(now - time::Duration::minutes(10 - n)),
            );
            snapshot.id = AssetId::parse(&format!("A{n}")).expect("id");
            detector.source.put(snapshot);
        }
        let first = detector
            .poll(now, std::time::Duration::ZERO)
            .await
            .expect("poll");
        assert_eq!((first.scanned, first.remaining), (1, 2));
        let second = detector.poll(now, BUDGET).await.expect("poll");
        // The watermark is inclusive: the first asset is seen again, unchanged.
        assert_eq!((second.scanned, second.remaining), (3, 0));
        assert_eq!(
            detector.publisher.kinds().len(),
            3,
            "one review request per asset"
        );
    }

    #[tokio::test]
    async fn an_older_read_does_not_roll_the_state_back() {
        let detector = detector();
        detector
            .reconcile(&asset("Approved", "2026-11-26T11:00:00"))
            .await
            .expect("ok");
        let stale = detector
            .reconcile(&asset("Ready for Review", "2026-11-26T10:00:00"))
            .await
            .expect("ok");
        assert_eq!(stale, 0);
        assert_eq!(detector.publisher.kinds(), [DomainEventKind::Approved]);
    }
}
