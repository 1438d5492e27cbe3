//! Change detection: read the asset, compare it with the last known state, publish the domain
//! events of the difference, remember the new state. Driven by DAM events (claimed once per event
//! id) and by the scheduled poll of recently edited assets (for webhooks that never arrived).

use crate::domain::dam::{AssetSnapshot, ChangeRules, DamEvent, DamEventKind, DomainEvent};
use crate::error::Retryable;
use crate::ports::{
    AssetSource, AssetStateStore, Claim, DamError, FlowPublisher, IdempotencyStore, OwnerToken,
    QueueError, Saved, StoreError,
};
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
    /// Assets found but left for the next poll (the time budget ran out).
    pub remaining: usize,
    /// Domain events published.
    pub published: usize,
    /// The watermark after the poll.
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
            self.states.forget(&event.asset).await?;
            return Ok(Handled::Forgotten);
        }
        match self.source.read(&event.asset).await? {
            None => Ok(Handled::Gone),
            Some(snapshot) => Ok(Handled::Reconciled {
                published: self.reconcile(&snapshot).await?,
            }),
        }
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
                if let (Some(seen), Some(now)) = (&previous.edited_at, &current.edited_at)
                    && seen > now
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

    /// Reconciles the assets edited since the watermark (or the first-poll lookback), oldest
    /// first, moving the watermark along as it goes (every [`WATERMARK_EVERY`] assets, at the end,
    /// and before returning an error), and stops once `budget` is spent, so a large backlog is
    /// worked off over several polls instead of timing out every time. The criterion is
    /// inclusive, so assets sharing the watermark's second are seen again (harmlessly).
    #[tracing::instrument(name = "poll_recently_edited_assets", skip_all)]
    pub async fn poll(
        &self,
        now: OffsetDateTime,
        budget: std::time::Duration,
    ) -> Result<PollReport, DetectError> {
        let started = std::time::Instant::now();
        let since = match self.states.watermark().await? {
            Some(watermark) => watermark,
            None => dam_timestamp(
                now - time::Duration::seconds(self.settings.first_poll_lookback_seconds),
            ),
        };
        let mut assets = self.source.edited_since(&since).await?;
        let edited_at = |a: &AssetSnapshot| {
            a.fields
                .get(self.rules.edit_date_field())
                .cloned()
                .unwrap_or_default()
        };
        assets.sort_by_key(edited_at);
        let mut published = 0;
        let mut processed = 0;
        let mut reached: Option<String> = None;
        for asset in &assets {
            if processed > 0 && started.elapsed() >= budget {
                break;
            }
            match self.reconcile(asset).await {
                Ok(n) => published += n,
                Err(error) => {
                    if let Some(reached) = &reached {
                        self.states.advance_watermark(reached).await?;
                    }
                    return Err(error);
                }
            }
            processed += 1;
            let at = edited_at(asset);
            if !at.is_empty() {
                reached = Some(at);
            }
            if processed % WATERMARK_EVERY == 0
                && let Some(reached) = &reached
            {
                self.states.advance_watermark(reached).await?;
            }
        }
        if let Some(reached) = &reached {
            self.states.advance_watermark(reached).await?;
        }
        let remaining = assets.len() - processed;
        tracing::info!(scanned = processed, remaining, published, since = %since, "poll of recently edited assets done");
        Ok(PollReport {
            scanned: processed,
            remaining,
            published,
            watermark: reached.or(Some(since)),
        })
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
    async fn a_deletion_forgets_the_asset_and_publishes_nothing() {
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
        assert_eq!(detector.publisher.kinds().len(), 1);
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
