//! The DAM side end to end: the simulator's webhooks reach `dam-webhook` through the HTTP front,
//! the queue runner feeds `detect-asset-changes`, domain events land on the flow queues.

use e2e::TestEnv;
use orange_logic_sim::{SimConfig, Simulator, WebhookTarget};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

const SECRET_HEADER: &str = "x-dam-webhook-secret";
const SECRET: &str = "local-dam-webhook-secret";

struct Dam {
    sim: Simulator,
    env: TestEnv,
}

impl Dam {
    async fn start() -> Self {
        let sim = Simulator::start(SimConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("simulator");
        let url = sim.url();
        let env = TestEnv::start_with(|options| options.orange_logic_url = Some(url)).await;
        sim.subscribe(WebhookTarget {
            url: env.stack.url("/dam/webhook"),
            header: SECRET_HEADER.into(),
            secret: SECRET.into(),
        });
        Self { sim, env }
    }

    /// An asset with every required field, as a draft; its creation is detected and remembered.
    async fn draft_asset(&self) -> String {
        let id = self.sim.add_asset(&[
            ("CoreField.Title", "North pier"),
            ("CoreField.Photographer", "A. Field"),
            ("Custom.Campaign", "SUMMER26"),
            ("CoreField.Status", "Draft"),
        ]);
        self.settle().await;
        id
    }

    /// Waits for the simulator's webhooks, then lets change detection consume `dam-events`.
    async fn settle(&self) {
        assert!(self.sim.wait_for_webhooks(Duration::from_secs(10)).await);
        let consumer = self
            .env
            .stack
            .consumer("DamEventsQueue")
            .expect("detect-asset-changes consumes dam-events");
        self.env
            .stack
            .runner
            .drain(consumer, 20)
            .await
            .expect("drain dam-events");
    }

    async fn flow_events(&self, queue: &str) -> Vec<Value> {
        self.env
            .receive_all(queue)
            .await
            .iter()
            .map(|body| serde_json::from_str(body).expect("domain event JSON"))
            .collect()
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test]
async fn editing_the_status_to_ready_for_review_yields_exactly_one_review_event() {
    let dam = Dam::start().await;
    let id = dam.draft_asset().await;
    dam.sim
        .edit(&id, "CoreField.Status", "Ready for Review")
        .expect("edit");
    dam.settle().await;

    let review = dam.flow_events("ReviewQueue").await;
    assert_eq!(kinds(&review), ["ready_for_review"]);
    assert_eq!(review[0]["asset"], id.as_str());
    assert!(dam.flow_events("IssueAlertQueue").await.is_empty());
    assert!(
        dam.sim.deliveries().iter().all(|d| d.status == Some(200)),
        "{:?}",
        dam.sim.deliveries()
    );
}

#[tokio::test]
async fn a_webhook_delivered_twice_yields_one_review_event() {
    let dam = Dam::start().await;
    let id = dam.draft_asset().await;
    dam.sim.duplicate_webhooks(true);
    dam.sim
        .edit(&id, "CoreField.Status", "Ready for Review")
        .expect("edit");
    dam.settle().await;

    let deliveries = dam.sim.deliveries();
    let edit = deliveries.last().expect("the edit was delivered");
    let copies = deliveries
        .iter()
        .filter(|d| d.event_id == edit.event_id && d.status == Some(200))
        .count();
    assert_eq!(copies, 2, "the same event id was accepted twice");
    assert_eq!(
        kinds(&dam.flow_events("ReviewQueue").await),
        ["ready_for_review"]
    );

    let claims = aws_sdk_dynamodb::Client::new(&dam.env.stack.aws)
        .get_item()
        .table_name(&dam.env.stack.resources.tables["DamEventClaimsTable"])
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("dam-event#{}", edit.event_id)),
        )
        .send()
        .await
        .expect("claim")
        .item
        .expect("the event was claimed");
    assert_eq!(
        claims
            .get("status")
            .and_then(|s| s.as_s().ok())
            .map(String::as_str),
        Some("COMPLETED")
    );
}

#[tokio::test]
async fn a_lost_webhook_is_caught_by_the_scheduled_poll_once() {
    let dam = Dam::start().await;
    let id = dam.draft_asset().await;
    dam.sim.drop_webhooks(true);
    dam.sim
        .edit(&id, "CoreField.Status", "Ready for Review")
        .expect("edit");
    dam.settle().await;
    assert_eq!(
        dam.env.queue_depth("ReviewQueue").await,
        0,
        "nothing without the webhook"
    );

    let report = dam
        .env
        .stack
        .fire_schedule("DetectAssetChangesFunction")
        .await
        .expect("poll");
    assert_eq!(report["published"], 1, "{report}");
    let again = dam
        .env
        .stack
        .fire_schedule("DetectAssetChangesFunction")
        .await
        .expect("poll");
    assert_eq!(again["published"], 0, "{again}");

    let review = dam.flow_events("ReviewQueue").await;
    assert_eq!(kinds(&review), ["ready_for_review"]);
    assert_eq!(review[0]["asset"], id.as_str());
}

#[tokio::test]
async fn a_dam_outage_leaves_the_event_queued_until_the_dam_answers() {
    let dam = Dam::start().await;
    let id = dam.draft_asset().await;
    dam.sim
        .edit(&id, "CoreField.Status", "Rejected")
        .expect("edit");
    assert!(dam.sim.wait_for_webhooks(Duration::from_secs(10)).await);
    // The DAM answers the connector's next calls with 503, whatever the timing: more than the
    // client's attempts inside one call, so the event goes back to the queue.
    dam.sim.fail_next_n(503, 3);
    let consumer = dam.env.stack.consumer("DamEventsQueue").expect("consumer");
    let first = dam
        .env
        .stack
        .runner
        .poll_once(consumer, 0)
        .await
        .expect("poll");
    assert_eq!((first.received, first.failed.len()), (1, 1), "{first:?}");
    assert!(dam.flow_events("IssueAlertQueue").await.is_empty());

    dam.settle().await;
    assert_eq!(
        kinds(&dam.flow_events("IssueAlertQueue").await),
        ["rejected"]
    );
}

#[tokio::test]
async fn a_webhook_with_a_wrong_secret_is_refused_and_enqueues_nothing() {
    let dam = Dam::start().await;
    let body = r#"{"events":[{"eventId":"e1","topic":"asset.edited","recordId":"2S00000001"}]}"#;
    let status = reqwest::Client::new()
        .post(dam.env.stack.url("/dam/webhook"))
        .header(SECRET_HEADER, "guess")
        .body(body)
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status.as_u16(), 401);
    assert_eq!(dam.env.queue_depth("DamEventsQueue").await, 0);
}

#[tokio::test]
async fn dynamodb_claims_have_one_owner_expire_at_their_deadline_and_complete_once() {
    use shared::adapters::dynamodb::DynamoIdempotencyStore;
    use shared::ports::{Claim, IdempotencyStore, OwnerToken, StoreError};
    let env = TestEnv::start().await;
    let claims = DynamoIdempotencyStore::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        &env.stack.resources.tables["DamEventClaimsTable"],
    );
    let (a, b) = (OwnerToken("a".into()), OwnerToken("b".into()));
    assert_eq!(
        claims.claim("k", &a, 100, 160).await.expect("claim"),
        Claim::Acquired
    );
    assert_eq!(
        claims.claim("k", &b, 150, 210).await.expect("claim"),
        Claim::HeldElsewhere
    );
    // a's deadline passed: b takes over, and a can no longer complete or release.
    assert_eq!(
        claims.claim("k", &b, 161, 220).await.expect("claim"),
        Claim::Acquired
    );
    assert!(matches!(
        claims.complete("k", &a, 999).await,
        Err(StoreError::NotOwner)
    ));
    assert!(matches!(
        claims.release("k", &a).await,
        Err(StoreError::NotOwner)
    ));
    claims.complete("k", &b, 999).await.expect("complete");
    assert_eq!(
        claims.claim("k", &a, 500, 560).await.expect("claim"),
        Claim::AlreadyDone
    );
    // A released claim can be taken again at once.
    assert_eq!(
        claims.claim("r", &a, 100, 160).await.expect("claim"),
        Claim::Acquired
    );
    claims.release("r", &a).await.expect("release");
    assert_eq!(
        claims.claim("r", &b, 101, 160).await.expect("claim"),
        Claim::Acquired
    );
}

#[tokio::test]
async fn dynamodb_asset_state_saves_are_conditional_on_the_version_read() {
    use shared::adapters::dynamodb::DynamoAssetStateStore;
    use shared::domain::dam::{AssetId, AssetState};
    use shared::ports::{AssetStateStore, Saved};
    let env = TestEnv::start().await;
    let states = DynamoAssetStateStore::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        &env.stack.resources.tables["AssetStateTable"],
    );
    let id = AssetId::parse("2S00000001").expect("id");
    let state = AssetState {
        status: Some("Draft".into()),
        ..AssetState::default()
    };
    assert_eq!(
        states.save(&id, &state, None).await.expect("save"),
        Saved::Written
    );
    assert_eq!(
        states.save(&id, &state, None).await.expect("save"),
        Saved::Conflict
    );
    let (loaded, version) = states.load(&id).await.expect("load").expect("stored");
    assert_eq!(loaded, state);
    assert_eq!(
        states.save(&id, &state, Some(version)).await.expect("save"),
        Saved::Written
    );
    assert_eq!(
        states.save(&id, &state, Some(version)).await.expect("save"),
        Saved::Conflict
    );

    assert_eq!(states.watermark().await.expect("watermark"), None);
    states
        .advance_watermark("2026-11-26T10:00:00")
        .await
        .expect("advance");
    states
        .advance_watermark("2026-11-26T09:00:00")
        .await
        .expect("never backward");
    assert_eq!(
        states.watermark().await.expect("watermark").as_deref(),
        Some("2026-11-26T10:00:00")
    );
}

#[tokio::test]
async fn forty_webhook_posts_in_a_row_are_each_enqueued() {
    let dam = Dam::start().await;
    let http = reqwest::Client::new();
    for n in 0..40 {
        let body = format!(
            r#"{{"events":[{{"eventId":"burst-{n}","topic":"asset.edited","recordId":"2S0000{n:04}"}}]}}"#
        );
        let status = http
            .post(dam.env.stack.url("/dam/webhook"))
            .header(SECRET_HEADER, SECRET)
            .body(body)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    assert_eq!(dam.env.queue_depth("DamEventsQueue").await, 40);
}

#[tokio::test]
async fn approving_a_campaign_package_reaches_the_review_and_campaign_flows() {
    let dam = Dam::start().await;
    let id = dam.sim.add_asset(&[
        ("CoreField.Title", "Summer campaign package"),
        ("CoreField.Photographer", "Studio 4"),
        ("Custom.Campaign", "SUMMER26"),
        ("CoreField.DocSubType", "Campaign-Package"),
        ("CoreField.Status", "Ready for Review"),
        ("CoreField.ExpirationDate", "2027-06-30T00:00:00"),
    ]);
    dam.settle().await;
    dam.sim
        .edit(&id, "CoreField.Status", "Approved")
        .expect("edit");
    dam.settle().await;
    // One FIFO message group per asset: read once, in order, at the end.
    assert_eq!(
        kinds(&dam.flow_events("ReviewQueue").await),
        ["ready_for_review", "approved"]
    );
    let campaign = dam.flow_events("CampaignQueue").await;
    assert_eq!(kinds(&campaign), ["campaign_package_approved"]);
    assert_eq!(campaign[0]["campaign"], "SUMMER26");

    dam.sim
        .edit(&id, "CoreField.ExpirationDate", "2027-03-31T00:00:00")
        .expect("edit");
    dam.settle().await;
    let rights = dam.flow_events("RightsExpiryQueue").await;
    assert_eq!(kinds(&rights), ["expiry_changed"]);
    assert_eq!(rights[0]["expiry"], "2027-03-31T00:00:00");
    assert!(dam.flow_events("IssueAlertQueue").await.is_empty());
}

/// Change detection over the strict simulator, with in-memory state, claims and flow queues
/// (no AWS): the poll's paging, dates and field names as the real service can answer them.
mod strict {
    use crate::orange_logic_client::{Logs, client_with, sim};
    use orange_logic_sim::{DateStyle, SimConfig, Simulator};
    use shared::adapters::orange_logic::source::OrangeLogicAssets;
    use shared::connector_config::ConnectorConfig;
    use shared::domain::dam::{AssetId, ChangeRules, DamEvent, DamEventKind, DomainEventKind};
    use shared::flows::detect_changes::{ChangeDetector, DetectSettings};
    use shared::ports::AssetStateStore as _;
    use shared::testing::{
        InMemoryAssetStateStore, InMemoryFlowPublisher, InMemoryIdempotencyStore,
    };
    use std::sync::Arc;
    use std::time::Duration;
    use tracing::instrument::WithSubscriber as _;

    type Detector = ChangeDetector<
        OrangeLogicAssets,
        InMemoryAssetStateStore,
        InMemoryIdempotencyStore,
        InMemoryFlowPublisher,
    >;

    fn config(tune: impl FnOnce(&mut ConnectorConfig)) -> ConnectorConfig {
        let mut config = ConnectorConfig::parse(include_str!("../../local/connector.yaml"))
            .expect("local configuration");
        tune(&mut config);
        config
    }

    fn detector(sim: &Simulator, config: &ConnectorConfig) -> Detector {
        let rules = ChangeRules::from_settings(&config.dam);
        let client = Arc::new(client_with(sim, |s| *s = s.clone().with_dam(&config.dam)));
        ChangeDetector {
            source: OrangeLogicAssets::new(client, &rules, &config.dam),
            rules,
            states: InMemoryAssetStateStore::default(),
            claims: InMemoryIdempotencyStore::default(),
            publisher: InMemoryFlowPublisher::default(),
            settings: DetectSettings::default(),
        }
    }

    const BUDGET: Duration = Duration::from_secs(60);

    fn complete(title: &str, status: &str, edited: &str) -> Vec<(String, String)> {
        [
            ("CoreField.Title", title),
            ("CoreField.Photographer", "A. Field"),
            ("Custom.Campaign", "SUMMER26"),
            ("CoreField.Status", status),
            ("CoreField.EditDate", edited),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn add(sim: &Simulator, fields: &[(String, String)]) -> String {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sim.add_asset(&pairs)
    }

    #[tokio::test]
    async fn an_endless_next_page_stops_at_the_cap_with_a_logged_reason_and_the_watermark_at_the_last_asset_read()
     {
        let sim = sim(SimConfig::default()).await;
        sim.set_behaviour(|b| b.ignore_page_number = true);
        for n in 0..150 {
            add(
                &sim,
                &complete(
                    &format!("A{n}"),
                    "Draft",
                    &format!("2026-11-26T10:{:02}:{:02}", n / 60, n % 60),
                ),
            );
        }
        let config = config(|c| c.dam.search.page_cap = 3);
        let detector = detector(&sim, &config);
        detector
            .states
            .advance_watermark("2026-11-26T00:00:00")
            .await
            .expect("watermark");
        let logs = Logs::default();
        let report = detector
            .poll(time::OffsetDateTime::now_utc(), BUDGET)
            .with_subscriber(logs.subscriber())
            .await
            .expect("poll");
        // Page 1 (the oldest 100, sorted on the edit date) three times, then the cap.
        assert_eq!(report.scanned, 300);
        assert_eq!(report.watermark.as_deref(), Some("2026-11-26T10:01:39"));
        assert_eq!(
            detector
                .states
                .watermark()
                .await
                .expect("watermark")
                .as_deref(),
            Some("2026-11-26T10:01:39"),
            "the 100th asset, the last one read"
        );
        assert_eq!(sim.stats().searches, 3);
        let text = logs.text();
        assert!(text.contains("page cap"), "{text}");
    }

    #[tokio::test]
    async fn display_format_dates_across_month_and_year_ends_never_move_the_watermark_back() {
        let sim = sim(SimConfig {
            time_zone: "America/New_York".into(),
            ..SimConfig::default()
        })
        .await;
        sim.set_behaviour(|b| b.date_style = DateStyle::Display);
        // Local times of the instance; as display text "9/30/2026" sorts after "12/31/2026"
        // and "1/1/2027" before both.
        for (n, edited) in [
            "2026-09-30T23:59:59",
            "2026-10-01T00:00:00",
            "2026-12-31T23:59:59",
            "2027-01-01T00:00:01",
        ]
        .iter()
        .enumerate()
        {
            add(&sim, &complete(&format!("A{n}"), "Draft", edited));
        }
        let config = config(|c| c.dam.dates.time_zone = "America/New_York".into());
        let detector = detector(&sim, &config);
        detector
            .states
            .advance_watermark("2026-09-01T00:00:00")
            .await
            .expect("watermark");
        let now = time::OffsetDateTime::now_utc();
        let first = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(first.scanned, 4);
        // 2027-01-01T00:00:01 in New York is 05:00:01 UTC.
        assert_eq!(first.watermark.as_deref(), Some("2027-01-01T05:00:01"));
        let again = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(again.watermark.as_deref(), Some("2027-01-01T05:00:01"));
        assert_eq!(
            detector
                .states
                .watermark()
                .await
                .expect("watermark")
                .as_deref(),
            Some("2027-01-01T05:00:01")
        );
    }

    #[tokio::test]
    async fn a_draft_to_rejected_change_seen_only_through_a_display_format_poll_produces_its_event()
    {
        let sim = sim(SimConfig {
            time_zone: "America/New_York".into(),
            ..SimConfig::default()
        })
        .await;
        sim.set_behaviour(|b| b.date_style = DateStyle::Display);
        // Last edited at the end of a month, local time; the edit below happens later.
        let id = add(&sim, &complete("Pier", "Draft", "2026-10-31T23:59:59"));
        let config = config(|c| c.dam.dates.time_zone = "America/New_York".into());
        let detector = detector(&sim, &config);
        detector
            .states
            .advance_watermark("2026-10-01T00:00:00")
            .await
            .expect("watermark");
        let now = time::OffsetDateTime::now_utc();
        detector.poll(now, BUDGET).await.expect("first sight");
        // No webhook: only the poll sees the change (edited now, in the display format).
        sim.edit(&id, "CoreField.Status", "Rejected").expect("edit");
        let report = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(report.published, 1, "{report:?}");
        assert_eq!(detector.publisher.kinds(), [DomainEventKind::Rejected]);
        let event = &detector.publisher.events()[0];
        assert!(
            event
                .edited_at
                .as_deref()
                .is_some_and(|e| e.contains('T') && !e.contains('/')),
            "edit instants are canonical: {event:?}"
        );
    }

    #[tokio::test]
    async fn a_photographer_field_under_another_case_raises_no_missing_metadata_alert() {
        let sim = sim(SimConfig {
            field_spellings: vec!["CoreField.photographer".into()],
            ..SimConfig::default()
        })
        .await;
        let id = add(
            &sim,
            &complete("Pier", "Ready for Review", "2026-11-26T10:00:00"),
        );
        let record = client_with(&sim, |_| {})
            .read_record("RecordID", &id)
            .await
            .expect("read")
            .expect("record");
        assert!(record.contains_key("CoreField.photographer"), "{record:?}");
        let detector = detector(&sim, &config(|_| {}));
        let event = DamEvent {
            event_id: "e1".into(),
            kind: DamEventKind::Created,
            asset: AssetId::parse(&id).expect("id"),
            occurred_at: None,
        };
        detector.handle_event(&event, 1, 60).await.expect("handled");
        assert_eq!(
            detector.publisher.kinds(),
            [DomainEventKind::ReadyForReview]
        );
    }

    #[tokio::test]
    async fn a_deleted_asset_found_by_the_poll_drops_its_state_and_pending_alerts() {
        let sim = sim(SimConfig::default()).await;
        let id = add(
            &sim,
            &complete("Pier", "Ready for Review", "2026-11-26T10:00:00"),
        );
        let detector = detector(&sim, &config(|_| {}));
        detector
            .states
            .advance_watermark("2026-11-26T00:00:00")
            .await
            .expect("watermark");
        let now = time::OffsetDateTime::now_utc();
        detector.poll(now, BUDGET).await.expect("poll");
        let asset = AssetId::parse(&id).expect("id");
        assert!(detector.states.load(&asset).await.expect("load").is_some());
        sim.drop_webhooks(true);
        assert!(sim.delete(&id));
        let report = detector.poll(now, BUDGET).await.expect("poll");
        assert_eq!(report.deleted, 1);
        assert!(detector.states.load(&asset).await.expect("load").is_none());
        assert_eq!(
            detector.publisher.kinds(),
            [
                DomainEventKind::ReadyForReview,
                DomainEventKind::AssetDeleted
            ]
        );
    }

    #[tokio::test]
    async fn events_carry_the_version_that_was_seen() {
        let sim = sim(SimConfig::default()).await;
        let id = add(&sim, &complete("Pier", "Draft", "2026-11-26T10:00:00"));
        sim.new_version(&id, "pier-v2.jpg").expect("version");
        sim.edit(&id, "CoreField.Status", "Ready for Review")
            .expect("edit");
        let detector = detector(&sim, &config(|_| {}));
        let event = DamEvent {
            event_id: "e1".into(),
            kind: DamEventKind::Edited,
            asset: AssetId::parse(&id).expect("id"),
            occurred_at: None,
        };
        detector.handle_event(&event, 1, 60).await.expect("handled");
        let published = detector.publisher.events();
        assert_eq!(published[0].version.as_deref(), Some("2"));
    }
}
