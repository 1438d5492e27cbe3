//! Flow 6 end to end on the local stack: a customer's phone (the WhatsApp simulator, writing to
//! the campaign number) sends a photo through the real webhook, router, UGC function and sender;
//! they tap Yes or No on the consent question, or never answer. The Orange Logic simulator keeps
//! the uploaded bytes, so the tests read the EXIF of what the DAM holds; moto holds the queues,
//! the UGC table and the staging bucket.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use e2e::{APP_SECRET, TestEnv};
use local::moto::workspace_root;
use shared::domain::field_ingest::{exif_gps, exif_orientation};
use shared::whatsapp::messages::MediaKind;
use std::collections::BTreeMap;
use std::time::Duration;
use whatsapp_sim::{SimConfig, SimUser, Simulator};

/// The token of `local/secrets.json`, which the simulator accepts.
const TOKEN: &str = "local-graph-token";
/// The campaign number of `local/connector.yaml` (campaign SUMMER26).
const UGC_NUMBER: &str = "109876543210988";
/// The customer.
const CUSTOMER: &str = "447700900777";
/// A photo straight from a phone: GPS, make, model, serial, orientation 6.
const PHOTO: &[u8] = include_bytes!("../../fixtures/ugc/photo-with-gps.jpg");

struct UgcBench {
    env: TestEnv,
    phone: Simulator,
    dam: orange_logic_sim::Simulator,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn bench(overrides: &[(&str, &str)]) -> UgcBench {
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("DAM simulator");
    dam.seed_file(&workspace_root().join("local/orange-logic-seed.json"))
        .expect("seed");
    let port = free_port();
    let mut vars: BTreeMap<String, String> = [
        ("CONSENT_REMINDER_SECONDS", "3600"),
        ("CONSENT_HOLD_SECONDS", "7200"),
    ]
    .iter()
    .chain(overrides)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    vars.insert("WHATSAPP_GRAPH_TIMEOUT_MS".into(), "20000".into());
    vars.insert("PAIR_INTERVAL_MS".into(), "1".into());
    let dam_url = dam.url();
    let env = TestEnv::start_with(|options| {
        options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
        options.orange_logic_url = Some(dam_url);
        options.env_overrides = vars;
    })
    .await;
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
    config.phone_number_id = UGC_NUMBER.into();
    config.status_delay = Duration::from_millis(5);
    let phone = Simulator::start(config).await.expect("WhatsApp simulator");
    UgcBench { env, phone, dam }
}

impl UgcBench {
    fn customer(&self) -> SimUser {
        self.phone.user(CUSTOMER)
    }

    async fn drain(&self, queue: &str) {
        self.env.drain(queue, 50).await;
    }

    /// Lets every webhook arrive, then runs the chain: router, UGC intake, sender.
    async fn run_chain(&self) {
        self.phone.idle().await;
        self.drain("InboundQueue").await;
        self.drain("UgcIntakeQueue").await;
        self.drain("OutboundQueue").await;
        self.phone.idle().await;
    }

    /// What the customer's phone received: (wamid, type, text) of each message.
    fn received(&self) -> Vec<(String, String, String)> {
        self.phone
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(CUSTOMER))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .map(|l| (l.id, l.kind, l.summary))
            .collect()
    }

    /// The consent questions (and reminders) on the phone.
    fn questions(&self) -> Vec<(String, String)> {
        self.received()
            .into_iter()
            .filter(|(_, kind, _)| kind == "interactive")
            .map(|(id, _, text)| (id, text))
            .collect()
    }

    /// Taps a button of the first consent question about `submission`.
    fn tap(&self, submission: &str, action: &str) {
        let (question, _) = self.questions().into_iter().next().expect("a question");
        let title = if action == "yes" {
            "Yes, I agree"
        } else {
            "No"
        };
        self.customer()
            .tap_reply_button(&question, &format!("ug|{action}|{submission}|1"), title);
    }

    /// Assets filed from WhatsApp UGC.
    fn ugc_assets(&self) -> Vec<orange_logic_sim::Asset> {
        self.dam
            .assets()
            .into_iter()
            .filter(|a| a.field("Custom.UgcSource").is_some())
            .collect()
    }

    fn folder_of(&self, asset: &orange_logic_sim::Asset) -> String {
        let parent = asset.field("CoreField.Parent-folder").unwrap_or_default();
        let folders = self.dam.folders();
        let mut path = Vec::new();
        let mut at = folders.iter().find(|f| f.record_id == parent);
        while let Some(folder) = at {
            path.insert(0, folder.title.clone());
            at = folder
                .parent
                .as_ref()
                .and_then(|p| folders.iter().find(|f| &f.record_id == p));
        }
        path.join("/")
    }

    async fn staged_objects(&self) -> usize {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.env.stack.aws)
                .force_path_style(true)
                .build(),
        );
        s3.list_objects_v2()
            .bucket(&self.env.stack.resources.buckets["MediaStagingBucket"])
            .prefix("ugc-pending/")
            .send()
            .await
            .expect("listed")
            .key_count()
            .unwrap_or(0) as usize
    }

    /// The consent records: (answer, terms version, submission) of each.
    async fn consents(&self) -> Vec<(String, String, String)> {
        let items = aws_sdk_dynamodb::Client::new(&self.env.stack.aws)
            .scan()
            .table_name(&self.env.stack.resources.tables["UgcTable"])
            .send()
            .await
            .expect("scanned")
            .items
            .unwrap_or_default();
        let text =
            |i: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
             k: &str| {
                i.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
        items
            .iter()
            .filter(|i| text(i, "kind") == "consent")
            .map(|i| {
                (
                    text(i, "answer"),
                    text(i, "terms_version"),
                    text(i, "submission"),
                )
            })
            .collect()
    }

    async fn sweep(&self) -> serde_json::Value {
        self.env
            .stack
            .fire_schedule("IntakeUgcSubmissionFunction")
            .await
            .expect("the sweep runs")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn consent_yes_files_the_photo_in_moderation_with_consent_recorded_and_no_gps_in_its_exif() {
    let bench = bench(&[]).await;
    let (wamid, _) = bench.customer().send_media(
        MediaKind::Image,
        "image/jpeg",
        PHOTO.to_vec(),
        Some("Sunset at the pier"),
        None,
    );
    bench.run_chain().await;
    let questions = bench.questions();
    assert_eq!(questions.len(), 1, "{:?}", bench.received());
    assert!(
        questions[0].1.contains("SUMMER26")
            && questions[0].1.contains("version 2026-11")
            && questions[0].1.contains("https://example.com/ugc-terms")
            && questions[0].1.contains("[Yes, I agree | No]"),
        "{questions:?}"
    );
    assert!(
        bench.ugc_assets().is_empty(),
        "nothing filed before consent"
    );
    assert_eq!(bench.staged_objects().await, 1, "the photo is held in S3");

    bench.tap(&wamid, "yes");
    bench.run_chain().await;

    let assets = bench.ugc_assets();
    assert_eq!(assets.len(), 1, "{assets:?}");
    let asset = &assets[0];
    assert_eq!(bench.folder_of(asset), "UGC/Moderation");
    assert_eq!(asset.field("Custom.Campaign"), Some("SUMMER26"));
    assert_eq!(
        asset.field("Custom.UgcSource"),
        Some("WhatsApp, campaign number")
    );
    assert_eq!(
        asset.field("CoreField.UsageRights"),
        Some("Pending clearance")
    );
    let consent = asset.field("Custom.UgcConsent").unwrap_or_default();
    assert!(
        consent.starts_with("consent=yes by=u_")
            && consent.contains("terms=2026-11")
            && consent.contains(&format!("asked={}", bench.questions()[0].0))
            && !consent.contains(CUSTOMER),
        "{consent}"
    );
    assert_eq!(
        bench.consents().await,
        [("yes".to_owned(), "2026-11".to_owned(), wamid.clone())]
    );
    let bytes = &asset.versions[0].head;
    assert!(!bytes.is_empty(), "the DAM holds the file");
    assert!(exif_gps(PHOTO).is_some(), "the original had GPS");
    assert_eq!(exif_gps(bytes), None, "no GPS in the DAM's copy");
    assert!(!contains(bytes, b"Pixel Test 9") && !contains(bytes, b"SN-12345678"));
    assert_eq!(exif_orientation(bytes), Some(6), "still upright");
    assert_eq!(bench.staged_objects().await, 0, "nothing left staged");
    assert!(
        bench
            .received()
            .last()
            .is_some_and(|(_, _, text)| text.contains("with our moderation team")),
        "{:?}",
        bench.received()
    );
    assert_eq!(
        e2e::emf::total(
            &bench.env.stack.resources.stack_name,
            "intake-ugc-submission",
            "ugc-intake",
            "AssetsIngested"
        ),
        1
    );
}

#[tokio::test]
async fn consent_no_deletes_the_staged_photo_and_confirms_without_any_asset() {
    let bench = bench(&[]).await;
    let (wamid, _) =
        bench
            .customer()
            .send_media(MediaKind::Image, "image/jpeg", PHOTO.to_vec(), None, None);
    bench.run_chain().await;
    assert_eq!(bench.staged_objects().await, 1);
    bench.tap(&wamid, "no");
    bench.run_chain().await;

    assert!(bench.ugc_assets().is_empty(), "{:?}", bench.ugc_assets());
    assert_eq!(bench.staged_objects().await, 0, "no staged object");
    assert_eq!(
        bench.consents().await,
        [("no".to_owned(), "2026-11".to_owned(), wamid)]
    );
    assert!(
        bench
            .received()
            .last()
            .is_some_and(|(_, _, text)| text.contains("we have deleted your submission")),
        "{:?}",
        bench.received()
    );
}

#[tokio::test]
async fn no_answer_gets_exactly_one_reminder_then_nothing_is_kept() {
    let bench = bench(&[
        ("CONSENT_REMINDER_SECONDS", "0"),
        ("CONSENT_HOLD_SECONDS", "0"),
    ])
    .await;
    bench
        .customer()
        .send_media(MediaKind::Image, "image/jpeg", PHOTO.to_vec(), None, None);
    bench.run_chain().await;
    assert_eq!(bench.questions().len(), 1);

    let first = bench.sweep().await;
    bench.drain("OutboundQueue").await;
    bench.phone.idle().await;
    assert_eq!(
        (first["reminded"].as_u64(), first["expired"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        bench.staged_objects().await,
        1,
        "still held after the reminder"
    );
    let second = bench.sweep().await;
    let third = bench.sweep().await;
    bench.drain("OutboundQueue").await;
    bench.phone.idle().await;
    assert_eq!(
        (second["reminded"].as_u64(), second["expired"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        (third["reminded"].as_u64(), third["expired"].as_u64()),
        (Some(0), Some(0))
    );

    let questions = bench.questions();
    assert_eq!(
        questions.len(),
        2,
        "the question and one reminder: {questions:?}"
    );
    assert!(questions[1].1.starts_with("Reminder:"), "{questions:?}");
    assert_eq!(bench.staged_objects().await, 0, "nothing staged");
    assert!(bench.ugc_assets().is_empty());
    assert!(bench.consents().await.is_empty(), "no consent was given");
}

#[tokio::test]
async fn a_consenting_senders_next_submission_goes_straight_to_moderation_without_a_second_ask() {
    let bench = bench(&[]).await;
    let (first, _) =
        bench
            .customer()
            .send_media(MediaKind::Image, "image/jpeg", PHOTO.to_vec(), None, None);
    bench.run_chain().await;
    bench.tap(&first, "yes");
    bench.run_chain().await;
    assert_eq!(bench.ugc_assets().len(), 1);

    bench.customer().send_media(
        MediaKind::Image,
        "image/jpeg",
        PHOTO.to_vec(),
        Some("another one"),
        None,
    );
    bench.run_chain().await;

    assert_eq!(
        bench.questions().len(),
        1,
        "asked once: {:?}",
        bench.received()
    );
    let assets = bench.ugc_assets();
    assert_eq!(assets.len(), 2, "{assets:?}");
    for asset in &assets {
        assert_eq!(bench.folder_of(asset), "UGC/Moderation");
        assert!(
            asset
                .field("Custom.UgcConsent")
                .is_some_and(|c| c.starts_with("consent=yes")),
            "{asset:?}"
        );
        assert_eq!(exif_gps(&asset.versions[0].head), None);
    }
    assert_eq!(
        bench.consents().await.len(),
        1,
        "one consent, recorded once"
    );
    assert_eq!(bench.staged_objects().await, 0);
}

#[tokio::test]
async fn a_submission_from_a_click_to_whatsapp_ad_is_tagged_with_the_ads_campaign() {
    let bench = bench(&[]).await;
    let (wamid, _) = bench.customer().send_media_from_ad(
        MediaKind::Image,
        "image/jpeg",
        PHOTO.to_vec(),
        None,
        "120210000000001",
    );
    bench.run_chain().await;
    assert!(
        bench.questions()[0].1.contains("SUMMER26-ADS"),
        "{:?}",
        bench.questions()
    );
    bench.tap(&wamid, "yes");
    bench.run_chain().await;
    let assets = bench.ugc_assets();
    assert_eq!(assets.len(), 1, "{assets:?}");
    assert_eq!(assets[0].field("Custom.Campaign"), Some("SUMMER26-ADS"));
    assert_eq!(
        assets[0].field("Custom.UgcSource"),
        Some("WhatsApp, click-to-WhatsApp ad 120210000000001")
    );
}

fn webhook_body(wamid: &str, media_id: &str, sha256: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": UGC_NUMBER},
            "contacts": [{"profile": {"name": "Sam"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": jiff::Timestamp::now().as_second().to_string(), "type": "image",
                          "image": {"id": media_id, "mime_type": "image/jpeg", "sha256": sha256}}]
        }}]}]
    })
    .to_string()
}

#[tokio::test]
async fn the_same_webhook_delivered_twice_asks_once_and_files_one_asset() {
    let bench = bench(&[]).await;
    let (media_id, sha256) = bench.phone.add_media("image/jpeg", PHOTO.to_vec());
    // The customer just wrote (the webhook below is theirs): their window is open.
    bench.customer().last_wrote(Some(Duration::from_secs(1)));
    let body = webhook_body("wamid.UGCDUP1", &media_id, &sha256);
    let meta = bench.env.meta();
    assert_eq!(meta.deliver(body.as_bytes()).await.expect("delivered"), 200);
    assert_eq!(meta.deliver(body.as_bytes()).await.expect("delivered"), 200);
    bench.drain("InboundQueue").await;
    // Past the queue's deduplication window the same routed message comes again.
    let consumer = bench
        .env
        .stack
        .consumer("UgcIntakeQueue")
        .expect("consumer");
    let routed = bench.env.receive_all("UgcIntakeQueue").await;
    assert_eq!(routed.len(), 1, "the queue deduplicated the deliveries");
    // The copy taken off the queue would hold the customer's FIFO group (their tap) for a minute.
    bench
        .env
        .stack
        .sqs()
        .purge_queue()
        .queue_url(
            bench
                .env
                .stack
                .resources
                .queue_url("UgcIntakeQueue")
                .expect("queue"),
        )
        .send()
        .await
        .expect("purged");
    for n in 0..2 {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("redelivery-{n}"));
        record.body = Some(routed[0].clone());
        record.event_source_arn = Some(consumer.arn.clone());
        record
            .attributes
            .insert("MessageGroupId".to_owned(), "g".to_owned());
        let mut event = SqsEvent::default();
        event.records.push(record);
        let answer = (consumer.handler)(event).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    bench.drain("OutboundQueue").await;
    bench.phone.idle().await;
    assert_eq!(
        bench.questions().len(),
        1,
        "one ask: {:?}",
        bench.received()
    );

    bench.tap("wamid.UGCDUP1", "yes");
    bench.run_chain().await;
    bench.tap("wamid.UGCDUP1", "yes");
    bench.run_chain().await;
    assert_eq!(bench.ugc_assets().len(), 1, "{:?}", bench.ugc_assets());
    assert_eq!(bench.dam.stats().calls_to("uploadnewmedia").len(), 1);
}
