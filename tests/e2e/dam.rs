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
    // The DAM answers the connector's next call with 503, whatever the timing.
    dam.sim.fail_next(&[503]);
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
