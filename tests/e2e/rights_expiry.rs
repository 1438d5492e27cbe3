//! Flow 3 end to end: the Orange Logic simulator holds the catalogue, `scan-rights-expiry` runs
//! as its schedule fires it (with `as_of` where a test needs another day or hour), digests land on
//! `outbound.fifo`, answers travel Meta → whatsapp-webhook → route-inbound → rights-expiry.fifo.

use e2e::TestEnv;
use orange_logic_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, QuietHours, Role, WhatsAppAddress};
use shared::domain::outbound::OutboundRequest;
use shared::ports::ContactDirectory;
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::ConnectorSecrets;
use shared::whatsapp::messages::{Content, ParamValue};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const FUNCTION: &str = "ScanRightsExpiryFunction";
const INTERNAL: &str = "109876543210987";
const DAY: i64 = 24 * 3600;

struct Expiry {
    env: TestEnv,
    sim: Simulator,
    pseudonyms: Pseudonymizer,
}

fn canonical(unix: i64) -> String {
    shared::domain::dam::DamInstant::from_unix_seconds(unix)
        .expect("instant")
        .canonical()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

impl Expiry {
    async fn start() -> Self {
        let sim = Simulator::start(SimConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("simulator");
        let url = sim.url();
        let env = TestEnv::start_with(|options| options.orange_logic_url = Some(url)).await;
        let secrets = ConnectorSecrets::from_json(
            &std::fs::read_to_string(local::moto::workspace_root().join("local/secrets.json"))
                .expect("local/secrets.json"),
        )
        .expect("secrets");
        Self {
            env,
            sim,
            pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        }
    }

    fn user(&self, phone: &str) -> UserPseudonym {
        self.pseudonyms.pseudonym(phone)
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.env.stack.aws)
    }

    fn table(&self, logical_id: &str) -> String {
        self.env.stack.resources.tables[logical_id].clone()
    }

    async fn person(&self, phone: &str, name: &str, role: Role, tune: impl FnOnce(&mut Contact)) {
        let mut contact = Contact::new(self.user(phone));
        contact.address = Some(WhatsAppAddress::parse(phone).expect("phone"));
        contact.name = Some(name.into());
        contact.roles = [role].into();
        tune(&mut contact);
        DynamoContactDirectory::new(self.dynamodb(), self.table("ContactsTable"))
            .put(&contact)
            .await
            .expect("put contact");
    }

    fn asset(
        &self,
        title: &str,
        owner: &str,
        expiry: &str,
        status: &str,
        campaign: &str,
    ) -> String {
        self.sim.add_asset(&[
            ("CoreField.Title", title),
            ("CoreField.Owner", owner),
            ("CoreField.ExpirationDate", expiry),
            ("CoreField.Status", status),
            ("Custom.Campaign", campaign),
        ])
    }

    async fn scan(&self, as_of: Option<&str>) -> Value {
        let mut input = json!({"scan": "rights_expiry"});
        if let Some(at) = as_of {
            input["as_of"] = json!(at);
        }
        self.env.stack.invoke(FUNCTION, input).await.expect("scan")
    }

    /// Invokes the scan as of `as_of` until it completes, as successive schedules would when one
    /// invocation is not enough (a loaded machine checkpoints); the totals and the invocations.
    async fn scan_to_end(&self, as_of: &str) -> (Value, u64) {
        let (mut alerted, mut sent, mut invocations) = (0, 0, 0);
        loop {
            invocations += 1;
            assert!(invocations <= 20, "the scan makes no progress");
            let report = self.scan(Some(as_of)).await;
            alerted += report["alerted"].as_u64().expect("alerted");
            sent += report["digests_sent"].as_u64().expect("digests_sent");
            if report["complete"] == true {
                return (
                    json!({"alerted": alerted, "digests_sent": sent}),
                    invocations,
                );
            }
        }
    }

    async fn scheduled_scan(&self) -> Value {
        self.env
            .stack
            .fire_schedule(FUNCTION)
            .await
            .expect("scheduled scan")
    }

    /// Takes everything off `outbound.fifo`, as the sender would (deleted: a FIFO group stays
    /// blocked while a message of it is in flight).
    async fn outbound(&self) -> Vec<OutboundRequest> {
        let sqs = self.env.stack.sqs();
        let url = self
            .env
            .stack
            .resources
            .queue_url("OutboundQueue")
            .expect("queue")
            .to_owned();
        let mut requests = Vec::new();
        loop {
            let batch = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return requests;
            }
            for message in batch {
                let body = message.body.as_deref().expect("a body");
                requests.push(serde_json::from_str(body).expect("an outbound request"));
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(message.receipt_handle.expect("receipt"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Alerts and digest entries in flow 3's table: every item but the scan's own bookkeeping
    /// (`cursor`/`scan`, which records when the last scan finished), every page counted.
    async fn table_items(&self) -> i32 {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamodb()
                .scan()
                .table_name(self.table("ExpiryAlertsTable"))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .filter_expression("pk <> :cursor")
                .expression_attribute_values(
                    ":cursor",
                    aws_sdk_dynamodb::types::AttributeValue::S("cursor".into()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan table");
            count += page.count;
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break count,
            }
        }
    }

    async fn drain(&self, queue: &str) {
        self.env.drain(queue, 20).await;
    }

    /// `phone` taps the row or button `id` on WhatsApp; the answer reaches flow 3.
    async fn tap(&self, phone: &str, id: &str, n: usize) {
        let wa_id = phone.trim_start_matches('+');
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15551230000", "phone_number_id": INTERNAL},
                "contacts": [{"profile": {"name": "Tapper"}, "wa_id": wa_id}],
                "messages": [{
                    "from": wa_id,
                    "id": format!("wamid.expiry-tap-{n}"),
                    "timestamp": unix_now().to_string(),
                    "type": "interactive",
                    "interactive": {"type": "list_reply", "list_reply": {"id": id, "title": "x"}},
                }],
            }}]}],
        });
        let status = self
            .env
            .meta()
            .deliver(body.to_string().as_bytes())
            .await
            .expect("post");
        assert_eq!(status, 200);
        self.drain("InboundQueue").await;
        self.drain("RightsExpiryQueue").await;
    }
}

fn asset_count(request: &OutboundRequest) -> usize {
    let template = request
        .template
        .as_ref()
        .expect("a template outside the window");
    match &template.body[0].value {
        ParamValue::Text(n) => n.parse().expect("a count"),
        other => panic!("count is {other:?}"),
    }
}

fn window_of(request: &OutboundRequest) -> String {
    request
        .key
        .version
        .split(':')
        .next()
        .expect("window")
        .to_owned()
}

/// Builds a catalogue of `total` assets of which 250 end inside the windows (a quarter expired
/// but still approved, a quarter each within 1, 7 and 30 days of `as_of`), owned by two owners.
async fn catalogue(expiry: &Expiry, total: usize, as_of: i64) {
    expiry.sim.generate_with(total - 250, 7, 2030);
    for i in 0..250_i64 {
        let ends = match i % 4 {
            0 => as_of - 3 * DAY,
            1 => as_of + DAY / 2,
            2 => as_of + 4 * DAY,
            _ => as_of + 20 * DAY,
        };
        let owner = if (i / 4) % 2 == 0 {
            "+447700900101"
        } else {
            "Bea Owner"
        };
        expiry.asset(
            &format!("Expiring asset {i}"),
            owner,
            &canonical(ends - i * 60),
            "Approved",
            "SUMMER26",
        );
    }
}

async fn people(expiry: &Expiry) {
    expiry
        .person("+447700900101", "Ana Owner", Role::Owner, |_| {})
        .await;
    expiry
        .person("+447700900102", "Bea Owner", Role::Owner, |_| {})
        .await;
    expiry
        .person("+33600000103", "Léa Juriste", Role::Legal, |c| {
            c.language = Some("fr_FR".into());
            c.time_zone = Some("Europe/Paris".into());
        })
        .await;
}

#[tokio::test]
async fn a_100k_catalogue_with_250_assets_in_windows_gives_one_digest_per_recipient_and_window_and_a_rerun_sends_and_writes_nothing()
 {
    let expiry = Expiry::start().await;
    let as_of = 1_796_205_600; // 2026-12-02T10:00:00Z
    catalogue(&expiry, 100_000, as_of).await;
    people(&expiry).await;
    let searches_before = expiry.sim.stats().calls_to("/api/search").len();

    let (report, invocations) = expiry.scan_to_end(&canonical(as_of)).await;
    assert_eq!(report["alerted"], 250, "{report}");
    // Two owners and one legal reviewer, four windows each (expired, 1, 7, 30 days).
    assert_eq!(report["digests_sent"], 12, "{report}");
    let searches = expiry.sim.stats().calls_to("/api/search").len() - searches_before;
    // Eight range searches (four windows × expiry and licence end) of one page each, and one
    // more per resumed invocation: the catalogue is never read whole.
    assert!(
        searches as u64 <= 8 + invocations,
        "{searches} searches in {invocations} invocations"
    );

    let sent = expiry.outbound().await;
    assert_eq!(sent.len(), 12);
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for request in &sent {
        *per.entry((request.key.recipient.to_string(), window_of(request)))
            .or_default() += asset_count(request);
    }
    assert_eq!(per.len(), 12, "one digest per recipient and window");
    let legal = expiry.user("+33600000103").to_string();
    let of = |who: &str| -> usize {
        per.iter()
            .filter(|((r, _), _)| r == who)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(of(&legal), 250, "legal hears of every asset");
    assert_eq!(
        of(&expiry.user("+447700900101").to_string())
            + of(&expiry.user("+447700900102").to_string()),
        250,
        "each asset reaches its owner once"
    );
    let french = sent
        .iter()
        .find(|r| r.key.recipient.to_string() == legal)
        .and_then(|r| match &r.content {
            Some(Content::List(list)) => list.header.clone(),
            _ => None,
        })
        .expect("legal's digest is a list");
    assert!(french.starts_with("Droits d'utilisation"), "{french}");

    let items = expiry.table_items().await;
    let (again, _) = expiry.scan_to_end(&canonical(as_of)).await;
    assert_eq!(again["alerted"], 0, "{again}");
    assert_eq!(again["digests_sent"], 0, "{again}");
    assert_eq!(expiry.table_items().await, items, "a rerun writes nothing");
    assert_eq!(
        expiry.env.queue_depth("OutboundQueue").await,
        0,
        "a rerun sends nothing"
    );
}

#[tokio::test]
async fn a_digest_due_at_3am_in_the_recipients_zone_arrives_after_their_quiet_hours_end() {
    let expiry = Expiry::start().await;
    // 2026-12-01T18:00:00Z is 03:00 on 2 December in Tokyo (UTC+9).
    let three_am = 1_796_148_000;
    expiry.asset(
        "Store opening video",
        "+819012345678",
        &canonical(three_am + 5 * DAY),
        "Approved",
        "SUMMER26",
    );
    expiry
        .person("+819012345678", "Kenji Owner", Role::Owner, |c| {
            c.time_zone = Some("Asia/Tokyo".into());
            c.quiet_hours = QuietHours::parse("22:00-07:00");
        })
        .await;

    let report = expiry.scan(Some(&canonical(three_am))).await;
    assert_eq!(
        (report["alerted"].as_u64(), report["digests_held"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(expiry.env.queue_depth("OutboundQueue").await, 0);

    let before_seven = expiry
        .scan(Some(&canonical(three_am + 4 * 3600 - 60)))
        .await;
    assert_eq!(before_seven["digests_held"], 1, "{before_seven}");
    assert_eq!(expiry.env.queue_depth("OutboundQueue").await, 0);

    let stack = expiry.env.stack.resources.stack_name.clone();
    let alerts = || e2e::emf::total(&stack, "scan-rights-expiry", "rights-expiry", "AlertsSent");
    assert_eq!(alerts(), 0, "a held digest is not counted sent");
    let seven = expiry.scan(Some(&canonical(three_am + 4 * 3600))).await;
    assert_eq!(seven["digests_sent"], 1, "{seven}");
    assert_eq!(alerts(), 1, "the digest counted once (EMF)");
    let sent = expiry.outbound().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].key.recipient, expiry.user("+819012345678"));
    assert_eq!(window_of(&sent[0]), "7d");
}

#[tokio::test]
async fn an_expiry_moved_from_5_to_60_days_cancels_the_held_alert_and_no_1_day_alert_follows() {
    let expiry = Expiry::start().await;
    let now = unix_now();
    let hour = (now % DAY) / 3600;
    // Quiet from an hour ago to three hours from now, every day (UTC): the first digest is held.
    let quiet = format!("{:02}:00-{:02}:00", (hour + 23) % 24, (hour + 3) % 24);
    let id = expiry.asset(
        "Bridge at dusk",
        "+447700900201",
        &canonical(now + 5 * DAY),
        "Approved",
        "SUMMER26",
    );
    expiry
        .person("+447700900201", "Olu Owner", Role::Owner, |c| {
            c.quiet_hours = QuietHours::parse(&quiet);
        })
        .await;

    let report = expiry.scheduled_scan().await;
    assert_eq!(
        (report["alerted"].as_u64(), report["digests_held"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );

    // The DAM's expiry moves out to 60 days; change detection says so on rights-expiry.fifo.
    expiry
        .sim
        .edit(&id, "CoreField.ExpirationDate", &canonical(now + 60 * DAY))
        .expect("edit");
    let file: Value =
        serde_json::from_str(&e2e::event_file("scan-rights-expiry/expiry-changed.json"))
            .expect("event file");
    let mut event: Value =
        serde_json::from_str(file["Records"][0]["body"].as_str().expect("a body"))
            .expect("an event");
    event["asset"] = json!(id);
    event["expiry"] = json!(canonical(now + 60 * DAY));
    expiry
        .env
        .stack
        .sqs()
        .send_message()
        .queue_url(
            expiry
                .env
                .stack
                .resources
                .queue_url("RightsExpiryQueue")
                .expect("queue"),
        )
        .message_body(event.to_string())
        .message_group_id(&id)
        .message_deduplication_id(event["id"].as_str().expect("an id"))
        .send()
        .await
        .expect("send the event");
    expiry.drain("RightsExpiryQueue").await;

    // Four days and six hours later (outside the quiet hours): the old date would be 18 hours away.
    let later = expiry
        .scan(Some(&canonical(now + 4 * DAY + 6 * 3600)))
        .await;
    assert_eq!(later["complete"], true, "{later}");
    assert_eq!(
        (later["alerted"].as_u64(), later["digests_sent"].as_u64()),
        (Some(0), Some(0)),
        "{later}"
    );
    assert_eq!(
        expiry.env.queue_depth("OutboundQueue").await,
        0,
        "no alert, held or new"
    );
}

#[tokio::test]
async fn request_renewal_and_pick_an_alternative_from_the_alert_write_to_the_dam_with_the_recipient_as_author()
 {
    let expiry = Expiry::start().await;
    let now = unix_now();
    let owner = "+447700900301";
    let id = expiry.asset(
        "Harbour poster",
        owner,
        &canonical(now + 5 * DAY),
        "Approved",
        "SUMMER26",
    );
    let good = expiry.asset(
        "Harbour poster v2",
        owner,
        &canonical(now + 400 * DAY),
        "Approved",
        "SUMMER26",
    );
    let expired = expiry.asset(
        "Old harbour poster",
        owner,
        &canonical(now - 2 * DAY),
        "Approved",
        "SUMMER26",
    );
    let other = expiry.asset(
        "Winter poster",
        owner,
        &canonical(now + 400 * DAY),
        "Approved",
        "WINTER26",
    );
    let draft = expiry.asset(
        "Harbour draft",
        owner,
        &canonical(now + 400 * DAY),
        "Draft",
        "SUMMER26",
    );
    expiry
        .person(owner, "Olive Owner", Role::Owner, |_| {})
        .await;

    let report = expiry.scheduled_scan().await;
    // The poster's 7-day digest, and the expired one still approved in its own.
    assert_eq!(report["digests_sent"], 2, "{report}");
    let digest = expiry.outbound().await;
    let rows: Vec<String> = digest
        .iter()
        .filter_map(|r| match &r.content {
            Some(Content::List(list)) => Some(
                list.sections[0]
                    .rows
                    .iter()
                    .map(|row| row.id.clone())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let open = format!("rx|open|{id}|");
    assert!(rows.contains(&open), "{rows:?}");

    expiry.tap(owner, &open, 1).await;
    let buttons = expiry.outbound().await;
    let ids: Vec<String> = buttons
        .iter()
        .filter_map(|r| match &r.content {
            Some(Content::Buttons(b)) => {
                Some(b.buttons.iter().map(|b| b.id.clone()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        ids.contains(&format!("rx|renew|{id}|")) && ids.contains(&format!("rx|alts|{id}|")),
        "{ids:?}"
    );

    expiry.tap(owner, &format!("rx|renew|{id}|"), 2).await;
    let log = expiry
        .sim
        .asset(&id)
        .expect("asset")
        .field("Custom.WhatsAppLog")
        .unwrap_or_default()
        .to_owned();
    assert!(
        log.contains("renewal requested") && log.contains("Olive Owner"),
        "{log}"
    );

    expiry.tap(owner, &format!("rx|alts|{id}|"), 3).await;
    let offered: Vec<String> = expiry
        .outbound()
        .await
        .iter()
        .filter_map(|r| match &r.content {
            Some(Content::List(list)) => Some(
                list.sections[0]
                    .rows
                    .iter()
                    .map(|row| row.id.clone())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        offered,
        [format!("rx|use|{id}|{good}")],
        "only the approved, unexpired one of the same campaign ({expired}, {other}, {draft} are not)"
    );

    expiry.tap(owner, &format!("rx|use|{id}|{good}"), 4).await;
    let log = expiry
        .sim
        .asset(&id)
        .expect("asset")
        .field("Custom.WhatsAppLog")
        .unwrap_or_default()
        .to_owned();
    assert!(
        log.contains(&format!(
            "Replaced by alternative {good} chosen by Olive Owner"
        )),
        "{log}"
    );

    // The same tap delivered again changes nothing more.
    expiry.tap(owner, &format!("rx|use|{id}|{good}"), 4).await;
    let again = expiry
        .sim
        .asset(&id)
        .expect("asset")
        .field("Custom.WhatsAppLog")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(again, log);
}

/// The figures of BENCHMARKS.md (run by hand: `cargo test -p e2e -- --ignored scan_times`).
#[tokio::test]
#[ignore = "a benchmark: prints scan times at 10k, 50k and 100k assets"]
async fn scan_times_at_10k_50k_100k_assets() {
    for total in [10_000, 50_000, 100_000] {
        let expiry = Expiry::start().await;
        let as_of = 1_796_205_600;
        catalogue(&expiry, total, as_of).await;
        people(&expiry).await;
        let calls_before = expiry.sim.stats().calls.len();
        let started = std::time::Instant::now();
        let (report, invocations) = expiry.scan_to_end(&canonical(as_of)).await;
        let took = started.elapsed();
        let stats = expiry.sim.stats();
        let calls = stats.calls.len() - calls_before;
        let searches = stats.calls_to("/api/search").len();
        eprintln!(
            "BENCH assets={total} matches=250 scan={:.2}s invocations={invocations} dam_calls={calls} searches={searches} digests={}",
            took.as_secs_f64(),
            report["digests_sent"]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_scan_that_would_outrun_its_invocation_checkpoints_and_the_next_invocations_finish_it_once()
 {
    use scan_rights_expiry::settings;
    use shared::adapters::expiry_ledger::DynamoExpiryLedger;
    use shared::adapters::orange_logic::expiry::OrangeLogicExpiryCatalogue;
    use shared::adapters::orange_logic::{Auth, OrangeLogicClient, Settings, TOKEN_PATH};
    use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
    use shared::connector_config::ConnectorConfig;
    use shared::flows::rights_expiry::RightsExpiry;
    use shared::ports::ExpiryLedger as _;

    let expiry = Expiry::start().await;
    let as_of = 1_796_205_600;
    catalogue(&expiry, 5_000, as_of).await;
    people(&expiry).await;
    let config = ConnectorConfig::parse(
        &std::fs::read_to_string(local::moto::workspace_root().join("local/connector.yaml"))
            .expect("local/connector.yaml"),
    )
    .expect("configuration");
    let mut settings = settings(&config, &expiry.sim.url(), 90).expect("settings");
    // Every invocation below has less time left than this: one page each, then the cursor.
    settings.time_margin = Duration::from_secs(3600);
    let client = OrangeLogicClient::new(
        Settings::new(
            expiry.sim.url(),
            Auth::ClientCredentials {
                token_path: TOKEN_PATH.into(),
                client_id: "connector-local".into(),
                client_secret: shared::secrets::Secret::new("local-orange-logic-secret"),
            },
        )
        .with_dam(&config.dam),
    )
    .expect("client");
    let flow = RightsExpiry {
        catalogue: OrangeLogicExpiryCatalogue::new(
            std::sync::Arc::new(client),
            settings.fields.all(),
            settings.dates.clone(),
            "Custom.WhatsAppLog",
        ),
        ledger: DynamoExpiryLedger::new(expiry.dynamodb(), expiry.table("ExpiryAlertsTable")),
        directory: DynamoContactDirectory::new(expiry.dynamodb(), expiry.table("ContactsTable")),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(
            expiry.env.stack.sqs(),
            expiry
                .env
                .stack
                .resources
                .queue_url("OutboundQueue")
                .expect("queue"),
        )),
        pseudonyms: expiry.pseudonyms.clone(),
        settings,
    };
    let at = shared::domain::dam::DamInstant::from_unix_seconds(as_of).expect("instant");
    let (mut invocations, mut alerted) = (0, 0);
    loop {
        invocations += 1;
        assert!(invocations <= 40, "the scan makes no progress");
        let short = tokio::time::Instant::now() + Duration::from_secs(3599);
        let report = flow.scan(at, short).await.expect("scan");
        alerted += report.alerted;
        if report.complete {
            assert_eq!(report.digests_sent, 12, "{report:?}");
            break;
        }
        assert_eq!(report.digests_sent, 0, "digests wait for the whole scan");
        assert!(flow.ledger.cursor().await.expect("cursor").is_some());
    }
    assert!(invocations > 8, "one page per invocation: {invocations}");
    assert_eq!(
        alerted, 250,
        "every asset alerted once across the invocations"
    );
    assert!(flow.ledger.cursor().await.expect("cursor").is_none());
    assert_eq!(expiry.outbound().await.len(), 12);
}

#[tokio::test]
async fn a_digest_reaches_the_owners_phone_through_the_sender_as_the_approved_template() {
    let dam = Simulator::start(SimConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = dam.url();
    let env = TestEnv::start_with(|o| {
        o.orange_logic_url = Some(url);
        o.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
        o.run_queues = true;
    })
    .await;
    let mut config = whatsapp_sim::SimConfig::new("local-graph-token", e2e::APP_SECRET);
    config.addr = SocketAddr::from(([127, 0, 0, 1], port));
    config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
    // The repository's templates, approved on the simulated WABA.
    config.templates.extend(whatsapp_sim::catalogue_templates(
        &local::moto::workspace_root().join("templates"),
    ));
    let phones = whatsapp_sim::Simulator::start(config)
        .await
        .expect("WhatsApp simulator");
    let expiry = Expiry {
        env,
        sim: dam,
        pseudonyms: Pseudonymizer::new(&shared::secrets::Secret::new(
            "local-pseudonym-key-0123456789abcdef0123",
        )),
    };
    let now = unix_now();
    expiry.asset(
        "Harbour poster",
        "+447700900401",
        &canonical(now + 5 * DAY),
        "Approved",
        "SUMMER26",
    );
    expiry
        .person("+447700900401", "Ana Owner", Role::Owner, |_| {})
        .await;

    let report = expiry.scheduled_scan().await;
    assert_eq!(report["digests_sent"], 1, "{report}");
    let mut lines = Vec::new();
    for _ in 0..300 {
        lines = phones
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some("447700900401"))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .map(|l| l.summary)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ana never wrote: outside the 24-hour window the digest goes as its approved template.
    assert_eq!(lines, ["template rights_expiry_alert"]);
}
