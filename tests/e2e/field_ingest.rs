//! Flow 2 end to end on the local stack: a field engineer's phone (the WhatsApp simulator) sends
//! media through the real webhook, router, ingest function and sender; the Orange Logic simulator
//! is the DAM; moto holds the queues, tables and the staging bucket, and the local stack tags
//! staged objects as GuardDuty Malware Protection for S3 would.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use e2e::{APP_SECRET, TestEnv};
use local::malware_scan::EICAR;
use local::moto::workspace_root;
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::messages::MediaKind;
use std::collections::BTreeMap;
use std::time::Duration;
use whatsapp_sim::{SimConfig, Simulator, TemplateDef};

/// The token of `local/secrets.json`, which the simulator accepts.
const TOKEN: &str = "local-graph-token";
/// The field engineer.
const FIELD: &str = "447700900555";
/// The pseudonym key of `local/secrets.json`.
const PSEUDONYM_KEY: &str = "local-pseudonym-key-0123456789abcdef0123";

struct FieldBench {
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

/// A small JPEG (the start of one: what the sniffer reads) with `tag` bytes to make it unique.
fn jpeg(tag: &str) -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    bytes.extend_from_slice(tag.as_bytes());
    bytes.extend(std::iter::repeat_n(0x55, 2048));
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

async fn bench(overrides: &[(&str, &str)]) -> FieldBench {
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("DAM simulator");
    dam.seed_file(&workspace_root().join("local/orange-logic-seed.json"))
        .expect("seed");
    let port = free_port();
    let mut vars: BTreeMap<String, String> = [("RECEIPT_WINDOW_SECONDS", "0")]
        .iter()
        .chain(overrides)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.insert("WHATSAPP_GRAPH_TIMEOUT_MS".into(), "20000".into());
    // The sender's pair pacing (one message per 6 s to a user) would make the tests wait.
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
    config.status_delay = Duration::from_millis(5);
    config
        .templates
        .push(TemplateDef::positional("content_receipt", "en_US", 3));
    let phone = Simulator::start(config).await.expect("WhatsApp simulator");
    let bench = FieldBench { env, phone, dam };
    let mut contact =
        Contact::new(Pseudonymizer::new(&Secret::new(PSEUDONYM_KEY)).pseudonym(FIELD));
    contact.name = Some("Ana Ferreira".into());
    contact.address = Some(WhatsAppAddress::parse(&format!("+{FIELD}")).expect("number"));
    contact.roles = [Role::Field].into();
    bench.directory().put(&contact).await.expect("contact");
    bench
}

impl FieldBench {
    fn table(&self, logical_id: &str) -> String {
        self.env.stack.resources.tables[logical_id].clone()
    }

    fn directory(&self) -> DynamoContactDirectory {
        DynamoContactDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.env.stack.aws),
            self.table("ContactsTable"),
        )
    }

    async fn drain(&self, queue: &str) {
        self.env.drain(queue, 50).await;
    }

    /// Lets every webhook arrive, then runs the chain: router, ingest, receipts, sender.
    async fn run_chain(&self) {
        self.phone.idle().await;
        self.drain("InboundQueue").await;
        self.drain("FieldIngestQueue").await;
        self.drain("FieldReceiptsQueue").await;
        self.drain("OutboundQueue").await;
    }

    /// What the field engineer's phone received: the text of each message.
    fn received(&self) -> Vec<String> {
        self.phone
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(FIELD))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .map(|l| l.summary)
            .collect()
    }

    /// Assets filed from WhatsApp (they carry a message id).
    fn filed(&self) -> Vec<orange_logic_sim::Asset> {
        self.dam
            .assets()
            .into_iter()
            .filter(|a| a.field("Custom.WhatsAppMessageId").is_some())
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
            .send()
            .await
            .expect("listed")
            .key_count()
            .unwrap_or(0) as usize
    }

    async fn claims(&self) -> Vec<String> {
        let items = aws_sdk_dynamodb::Client::new(&self.env.stack.aws)
            .scan()
            .table_name(self.table("FieldIngestClaimsTable"))
            .send()
            .await
            .expect("scanned")
            .items
            .unwrap_or_default();
        items
            .iter()
            .filter_map(|i| i.get("status")?.as_s().ok().cloned())
            .collect()
    }
}

#[tokio::test]
async fn a_tagged_photo_with_a_location_lands_in_its_folder_with_one_receipt() {
    let bench = bench(&[]).await;
    let user = bench.phone.user(FIELD);
    user.send_location(51.507_351, -0.127_758, Some("Storefront"));
    let (wamid, _) = user.send_media(
        MediaKind::Image,
        "image/jpeg",
        jpeg("storefront"),
        Some("#SPRING26 storefront"),
        None,
    );
    bench.run_chain().await;

    let filed = bench.filed();
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(
        e2e::emf::total(
            &bench.env.stack.resources.stack_name,
            "ingest-field-media",
            "field-ingest",
            "AssetsIngested"
        ),
        1,
        "one asset counted (EMF)"
    );
    let asset = &filed[0];
    assert_eq!(bench.folder_of(asset), "Campaigns/Spring26/Field");
    assert_eq!(asset.field("Custom.Contributor"), Some("Ana Ferreira"));
    assert_eq!(asset.field("Custom.Location"), Some("51.507351,-0.127758"));
    assert_eq!(
        asset.field("CoreField.Description"),
        Some("#SPRING26 storefront")
    );
    assert_eq!(asset.field("CoreField.ProjectTag"), Some("SPRING26"));
    assert_eq!(asset.field("CoreField.Status"), Some("Field review"));
    assert_eq!(
        asset.field("Custom.WhatsAppMessageId"),
        Some(wamid.as_str())
    );
    assert!(
        asset
            .field("Custom.SenderPseudonym")
            .is_some_and(|p| p.starts_with("u_") && !p.contains(FIELD))
    );
    let received = bench.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains(&asset.identifier) && received[0].contains("Campaigns/Spring26/Field"),
        "{received:?}"
    );
    assert_eq!(bench.staged_objects().await, 0, "staged copies are removed");
    let log = e2e::logs::captured();
    assert!(
        log.contains("field media filed in the DAM"),
        "the flow logs what it did"
    );
    assert!(!log.contains(FIELD), "no clear number in the log");
    assert!(!log.contains("storefront"), "no caption in the log");
}

#[tokio::test]
async fn three_photos_sent_together_make_three_assets_and_one_receipt() {
    let bench = bench(&[]).await;
    let user = bench.phone.user(FIELD);
    user.send_text("project BRIDGE-12");
    bench.run_chain().await;
    assert!(
        bench.received()[0].contains("Project set to BRIDGE-12"),
        "{:?}",
        bench.received()
    );
    bench.phone.hold_deliveries();
    for i in 0..3 {
        user.send_media(
            MediaKind::Image,
            "image/jpeg",
            jpeg(&format!("pier-{i}")),
            None,
            None,
        );
    }
    bench.phone.release_deliveries();
    bench.phone.idle().await;
    bench.drain("InboundQueue").await;
    bench.drain("FieldIngestQueue").await;
    // A location pin sent just after the photos is theirs too.
    user.send_location(53.4, -2.98, None);
    bench.phone.idle().await;
    bench.drain("InboundQueue").await;
    bench.drain("FieldIngestQueue").await;
    bench.drain("FieldReceiptsQueue").await;
    bench.drain("OutboundQueue").await;

    let filed = bench.filed();
    assert_eq!(filed.len(), 3, "{filed:?}");
    for asset in &filed {
        assert_eq!(bench.folder_of(asset), "Projects/Bridge/Field");
        assert_eq!(asset.field("CoreField.ProjectTag"), Some("BRIDGE-12"));
        assert_eq!(asset.field("Custom.Location"), Some("53.400000,-2.980000"));
    }
    let received = bench.received();
    assert_eq!(
        received.len(),
        2,
        "the project reply and one receipt: {received:?}"
    );
    for asset in &filed {
        assert!(received[1].contains(&asset.identifier), "{received:?}");
    }
}

fn webhook_body(wamid: &str, media_id: &str, sha256: &str) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": "109876543210987"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": FIELD}],
            "messages": [{"from": FIELD, "id": wamid, "timestamp": "1795703398", "type": "image",
                          "image": {"id": media_id, "mime_type": "image/jpeg", "sha256": sha256,
                                    "caption": "#BRIDGE-7 pier"}}]
        }}]}]
    })
    .to_string()
}

#[tokio::test]
async fn the_same_webhook_delivered_three_times_twice_concurrently_files_one_asset() {
    let bench = bench(&[]).await;
    let (media_id, sha256) = bench.phone.add_media("image/jpeg", jpeg("dup"));
    let body = webhook_body("wamid.FIELDDUP1", &media_id, &sha256);
    let meta = bench.env.meta();
    let (a, b) = tokio::join!(meta.deliver(body.as_bytes()), meta.deliver(body.as_bytes()));
    assert_eq!((a.expect("delivered"), b.expect("delivered")), (200, 200));
    assert_eq!(meta.deliver(body.as_bytes()).await.expect("delivered"), 200);
    bench.drain("InboundQueue").await;

    // Past the queues' 5-minute deduplication (Meta retries for days), the same routed message
    // reaches the function again, twice at once: the claim lets one through.
    let consumer = bench
        .env
        .stack
        .consumer("FieldIngestQueue")
        .expect("consumer");
    let routed = bench.env.receive_all("FieldIngestQueue").await;
    assert_eq!(routed.len(), 1, "the queue deduplicated the deliveries");
    let event = |n: usize| {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("redelivery-{n}"));
        record.body = Some(routed[0].clone());
        record.event_source_arn = Some(consumer.arn.clone());
        record
            .attributes
            .insert("MessageGroupId".to_owned(), "g".to_owned());
        let mut event = SqsEvent::default();
        event.records.push(record);
        event
    };
    let first = consumer.instances[0].clone();
    let second = consumer.instances[1 % consumer.instances.len()].clone();
    let (one, two) = tokio::join!(first(event(1)), second(event(2)));
    let failed = one.batch_item_failures.len() + two.batch_item_failures.len();
    assert!(failed <= 1, "at most the one held elsewhere comes back");
    let third = (consumer.handler)(event(3)).await;
    assert!(third.batch_item_failures.is_empty());
    bench.drain("FieldReceiptsQueue").await;
    bench.drain("OutboundQueue").await;

    assert_eq!(bench.filed().len(), 1, "{:?}", bench.filed());
    assert_eq!(bench.dam.stats().calls_to("uploadnewmedia").len(), 1);
    assert_eq!(bench.received().len(), 1, "{:?}", bench.received());
    assert_eq!(bench.claims().await, ["COMPLETED"]);
}

#[tokio::test]
async fn failing_after_the_s3_upload_and_again_after_the_dam_upload_still_files_one_asset() {
    let bench = bench(&[]).await;
    // First attempt: staged, then the upload fails before the DAM stores it. Second attempt:
    // the DAM stores it and the answer is lost. Third: the earlier upload is found.
    bench.dam.fail_next_upload(500);
    bench.dam.fail_next_upload_after_storing(504);
    bench.phone.user(FIELD).send_media(
        MediaKind::Image,
        "image/jpeg",
        jpeg("retry"),
        Some("#BRIDGE-3"),
        None,
    );
    bench.run_chain().await;

    let filed = bench.filed();
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(bench.folder_of(&filed[0]), "Projects/Bridge/Field");
    let stats = bench.dam.stats();
    assert_eq!(
        stats.calls_to("uploadnewmedia").len(),
        2,
        "the third attempt found the second's upload instead of sending the file again"
    );
    assert_eq!(
        bench.claims().await,
        ["COMPLETED"],
        "nothing left in progress"
    );
    assert_eq!(bench.env.queue_depth("FieldIngestDLQ").await, 0);
    assert_eq!(bench.env.queue_depth("FieldIngestQueue").await, 0);
    assert_eq!(bench.received().len(), 1, "{:?}", bench.received());
    assert_eq!(bench.staged_objects().await, 0);
}

#[tokio::test]
async fn the_dam_answering_503_for_a_while_delays_the_asset_without_losing_it() {
    let bench = bench(&[]).await;
    bench
        .dam
        .set_behaviour(|b| b.retry_after = orange_logic_sim::RetryAfterStyle::Seconds(0));
    bench.dam.fail_next_n(503, 12);
    bench
        .phone
        .user(FIELD)
        .send_media(MediaKind::Image, "image/jpeg", jpeg("outage"), None, None);
    bench.run_chain().await;

    let filed = bench.filed();
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(bench.folder_of(&filed[0]), "WhatsApp/Field/Unsorted");
    assert_eq!(bench.env.queue_depth("FieldIngestDLQ").await, 0);
    assert_eq!(bench.claims().await, ["COMPLETED"]);
    assert_eq!(bench.received().len(), 1, "{:?}", bench.received());
}

#[tokio::test]
async fn each_bad_file_is_refused_with_a_reply_and_nothing_reaches_the_dam() {
    let bench = bench(&[]).await;
    let user = bench.phone.user(FIELD);
    // A PDF declared as a JPEG.
    user.send_media(
        MediaKind::Image,
        "image/jpeg",
        b"%PDF-1.7\n1 0 obj\n".to_vec(),
        None,
        None,
    );
    // Bytes that do not hash to the webhook's sha256.
    let (_, tampered) = user.send_media(MediaKind::Image, "image/jpeg", jpeg("x"), None, None);
    bench.phone.tamper_media(&tampered);
    // Larger than the 100 MB cap (never downloaded: Graph's size is checked first).
    let (big, big_sha) = bench
        .phone
        .add_synthetic_media("video/mp4", 101 * 1024 * 1024);
    user.send_stored_media(MediaKind::Video, &big, "video/mp4", &big_sha, None);
    // A document named to climb out of any folder.
    user.send_media(
        MediaKind::Document,
        "image/jpeg",
        jpeg("name"),
        None,
        Some("../../etc/passwd.jpg"),
    );
    // A PDF GuardDuty tags THREATS_FOUND.
    let mut infected = b"%PDF-1.4\n".to_vec();
    infected.extend_from_slice(EICAR);
    user.send_media(
        MediaKind::Document,
        "application/pdf",
        infected,
        None,
        Some("report.pdf"),
    );
    bench.run_chain().await;

    assert!(bench.filed().is_empty(), "{:?}", bench.filed());
    let received = bench.received();
    assert_eq!(received.len(), 5, "{received:?}");
    for expected in [
        "does not match its type",
        "damaged on the way",
        "larger than 100 MB",
        "file name is not acceptable",
        "security scan flagged it",
    ] {
        assert!(
            received.iter().any(|r| r.contains(expected)),
            "no reply says {expected:?}: {received:?}"
        );
    }
    assert_eq!(bench.staged_objects().await, 0, "nothing stays staged");
    assert_eq!(bench.env.queue_depth("FieldIngestDLQ").await, 0);
}

#[tokio::test]
async fn a_malware_scan_that_never_completes_fails_closed_with_a_reply() {
    let bench = bench(&[("MALWARE_SCAN_WAIT_SECONDS", "1")]).await;
    bench
        .env
        .stack
        .malware_scanner
        .as_ref()
        .expect("the local stack scans")
        .hold(true);
    bench.phone.user(FIELD).send_media(
        MediaKind::Image,
        "image/jpeg",
        jpeg("unscanned"),
        None,
        None,
    );
    bench.run_chain().await;

    assert!(bench.filed().is_empty());
    let received = bench.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains("scan did not complete"),
        "{received:?}"
    );
    assert_eq!(bench.staged_objects().await, 0);
}

/// An `events/ingest-field-media/` file as the local queue's event source would deliver it.
fn event_file(name: &str, arn: &str) -> SqsEvent {
    let mut event: SqsEvent =
        serde_json::from_str(&e2e::event_file(&format!("ingest-field-media/{name}")))
            .expect("an SQS event");
    for record in &mut event.records {
        record.event_source_arn = Some(arn.to_owned());
    }
    event
}

#[tokio::test]
async fn the_event_files_are_handled_as_documented() {
    let bench = bench(&[]).await;
    let stack = &bench.env.stack;
    let ingest = stack.consumer("FieldIngestQueue").expect("consumer");
    let receipts = stack.consumer("FieldReceiptsQueue").expect("consumer");

    let response = (ingest.handler)(event_file("location-and-project.json", &ingest.arn)).await;
    assert!(response.batch_item_failures.is_empty());
    let who = Pseudonymizer::new(&Secret::new(PSEUDONYM_KEY)).pseudonym(FIELD);
    let contact = bench
        .directory()
        .get(&who)
        .await
        .expect("read")
        .expect("contact");
    assert_eq!(contact.project_tag.as_deref(), Some("BRIDGE-12"));
    assert_eq!(
        bench.env.queue_depth("OutboundQueue").await,
        1,
        "the project reply"
    );

    let response = (ingest.handler)(event_file("malformed.json", &ingest.arn)).await;
    assert!(response.batch_item_failures.is_empty(), "never retried");
    assert_eq!(bench.env.queue_depth("FieldIngestDLQ").await, 2);

    // A receipt for a burst this stack never opened: nothing to send, nothing to retry.
    let response = (receipts.handler)(event_file("receipt-due.json", &receipts.arn)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(bench.env.queue_depth("OutboundQueue").await, 1);
}
