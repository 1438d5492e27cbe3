//! Flow 4 end to end: a campaign package approved in the Orange Logic simulator reaches change
//! detection by webhook, `campaign-rollout` notifies the regional contacts, their answers come
//! from the WhatsApp simulator through `whatsapp-webhook` and `route-inbound`; the tests read what
//! each person is sent, what the package's comment log ends with, and the status per region.

use e2e::{APP_SECRET, TestEnv};
use orange_logic_sim::{SimConfig as DamConfig, Simulator as DamSim, WebhookTarget};
use serde_json::{Value, json};
use shared::adapters::campaigns::DynamoCampaignStore;
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::{MessageFlow, OutboundRequest};
use shared::ports::ContactDirectory;
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::ConnectorSecrets;
use std::net::SocketAddr;
use std::time::Duration;
use whatsapp_sim::{SimConfig as WaConfig, Simulator as WaSim};

const NOTIFICATIONS: &str = "109876543210987";
const ANA: &str = "447700900301";
const DIRK: &str = "447700900302";
const NORA: &str = "447700900303";
const OLLE: &str = "447700900304";
const ZED: &str = "447700900305";
const COMMENTS: &str = "Custom.WhatsAppLog";

struct Stack {
    dam: DamSim,
    wa: WaSim,
    env: TestEnv,
    pseudonyms: Pseudonymizer,
}

impl Stack {
    /// `phones`: the sender delivers to the WhatsApp simulator, which knows the catalogue.
    async fn start(phones: bool) -> Self {
        let dam = DamSim::start(DamConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("Orange Logic simulator");
        let url = dam.url();
        let graph_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let env = TestEnv::start_with(|options| {
            options.orange_logic_url = Some(url);
            if phones {
                options.graph_base_url = Some(format!("http://127.0.0.1:{graph_port}"));
            }
        })
        .await;
        dam.subscribe(WebhookTarget {
            url: env.stack.url("/dam/webhook"),
            header: "x-dam-webhook-secret".into(),
            secret: "local-dam-webhook-secret".into(),
        });
        let mut config = WaConfig::new("local-graph-token", APP_SECRET);
        config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        config.phone_number_id = NOTIFICATIONS.into();
        if phones {
            config.addr = SocketAddr::from(([127, 0, 0, 1], graph_port));
            config.status_delay = Duration::from_millis(5);
            config.templates.extend(whatsapp_sim::catalogue_templates(
                &local::moto::workspace_root().join("templates"),
            ));
        }
        let wa = WaSim::start(config).await.expect("WhatsApp simulator");
        let secrets = ConnectorSecrets::from_json(
            &std::fs::read_to_string(local::moto::workspace_root().join("local/secrets.json"))
                .expect("local/secrets.json"),
        )
        .expect("secrets");
        let stack = Self {
            dam,
            wa,
            env,
            pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        };
        stack
            .person(ANA, "Ana Ruiz", Role::Regional, &["Iberia"], false)
            .await;
        stack
            .person(DIRK, "Dirk Bauer", Role::Regional, &["DACH"], false)
            .await;
        stack
            .person(NORA, "Nora Lind", Role::Regional, &["Nordics"], false)
            .await;
        stack
            .person(OLLE, "Olle Opted", Role::Regional, &["Nordics"], true)
            .await;
        stack
            .person(ZED, "Zed France", Role::Regional, &["France"], false)
            .await;
        stack
    }

    fn who(&self, phone: &str) -> UserPseudonym {
        self.pseudonyms.pseudonym(phone)
    }

    async fn person(&self, phone: &str, name: &str, role: Role, regions: &[&str], out: bool) {
        let mut contact = Contact::new(self.who(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone).expect("phone"));
        contact.name = Some(name.into());
        contact.roles = [role].into_iter().collect();
        contact.regions = regions.iter().map(|r| (*r).to_owned()).collect();
        let directory = DynamoContactDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.env.stack.aws),
            self.env.stack.resources.tables["ContactsTable"].clone(),
        );
        directory.put(&contact).await.expect("directory");
        if out {
            // An opt-out is recorded as STOP records it (an import keeps it, never sets it).
            directory
                .opt_out(&contact.pseudonym, 1_764_000_000_000)
                .await
                .expect("opt-out");
        }
    }

    /// The SUMMER26 package for three regions, with a banner per region and a poster for all;
    /// returns its RecordID once its creation is detected.
    async fn package(&self) -> String {
        let member = |title: &str, region: &str| {
            let mut fields = vec![
                ("CoreField.Title", title),
                ("Custom.Campaign", "SUMMER26"),
                ("CoreField.Status", "Approved"),
            ];
            if !region.is_empty() {
                fields.push(("Custom.Region", region));
            }
            self.dam.add_asset(&fields)
        };
        let members = [
            member("Hero banner ES", "Iberia"),
            member("Hero banner DE", "DACH"),
            member("Hero banner SE", "Nordics"),
            member("Poster", ""),
        ]
        .join("|");
        let id = self.dam.add_asset(&[
            ("CoreField.Title", "Summer launch kit"),
            ("CoreField.DocSubType", "Campaign-Package"),
            ("Custom.Campaign", "SUMMER26"),
            ("Custom.Region", "Iberia|DACH|Nordics"),
            ("Custom.PackageAssets", &members),
            ("CoreField.Status", "Draft"),
        ]);
        self.settle_dam().await;
        id
    }

    async fn approve(&self, id: &str) {
        self.dam
            .edit(id, "CoreField.Status", "Approved")
            .expect("edit");
        self.settle_dam().await;
        self.drain("CampaignQueue").await;
    }

    async fn settle_dam(&self) {
        assert!(self.dam.wait_for_webhooks(Duration::from_secs(10)).await);
        self.drain("DamEventsQueue").await;
    }

    async fn drain(&self, queue: &str) {
        self.env.drain_concurrently(queue, 20).await;
    }

    /// Lets route-inbound hand what the users sent to the campaign queue, and the flow handle it.
    async fn settle_answers(&self) {
        self.wa.idle().await;
        self.drain("InboundQueue").await;
        self.drain("CampaignQueue").await;
    }

    /// What the one sender was asked to send since the last look (taken off the queue).
    async fn sent(&self) -> Vec<OutboundRequest> {
        self.env.take_all("OutboundQueue").await
    }

    async fn deliver(&self) {
        self.drain("OutboundQueue").await;
        self.wa.idle().await;
    }

    /// What the simulated phone shows from the business: (wamid, summary), oldest first.
    fn phone(&self, phone: &str) -> Vec<(String, String)> {
        e2e::business_lines(&self.wa, phone)
    }

    fn comments(&self, id: &str) -> String {
        self.dam
            .asset(id)
            .expect("asset")
            .fields
            .get(COMMENTS)
            .cloned()
            .unwrap_or_default()
    }

    fn version(&self, id: &str) -> String {
        self.dam
            .asset(id)
            .expect("asset")
            .fields
            .get("CoreField.Version")
            .cloned()
            .unwrap_or_default()
    }

    fn store(&self) -> DynamoCampaignStore {
        DynamoCampaignStore::new(
            aws_sdk_dynamodb::Client::new(&self.env.stack.aws),
            self.env.stack.resources.tables["CampaignRolloutsTable"].clone(),
        )
    }

    /// Puts `body` on campaign.fifo as a new message (a redelivery gets a new message id).
    async fn enqueue(&self, body: &str, group: &str, dedup: &str) {
        self.env
            .stack
            .sqs()
            .send_message()
            .queue_url(
                self.env
                    .stack
                    .resources
                    .queue_url("CampaignQueue")
                    .expect("queue"),
            )
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .expect("send");
    }
}

fn to<'a>(sent: &'a [OutboundRequest], who: &UserPseudonym) -> Vec<&'a OutboundRequest> {
    sent.iter().filter(|r| &r.key.recipient == who).collect()
}

fn content(request: &OutboundRequest) -> Value {
    serde_json::to_value(&request.content).expect("json")
}

fn text(request: &OutboundRequest) -> String {
    content(request)["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn template(request: &OutboundRequest) -> Value {
    serde_json::to_value(&request.template).expect("json")
}

fn payload(request: &OutboundRequest, index: usize) -> String {
    template(request)["buttons"][index]["payload"]
        .as_str()
        .unwrap_or_else(|| panic!("button {index}: {}", template(request)))
        .to_owned()
}

fn body_of(file: &str) -> Value {
    let file: Value = serde_json::from_str(&e2e::event_file(file)).expect("event file");
    serde_json::from_str(file["Records"][0]["body"].as_str().expect("a body")).expect("a body")
}

#[tokio::test]
async fn a_package_for_three_regions_notifies_each_once_and_logs_confirm_format_and_flag_with_their_authors()
 {
    let stack = Stack::start(false).await;
    let id = stack.package().await;
    stack.approve(&id).await;
    let sent = stack.sent().await;
    assert_eq!(sent.len(), 3, "Ana, Dirk and Nora: {sent:?}");
    let notice = |phone: &str| {
        let mine = to(&sent, &stack.who(phone));
        assert_eq!(mine.len(), 1, "{phone}: {mine:?}");
        assert_eq!(mine[0].key.flow, MessageFlow::Campaign);
        mine[0].clone()
    };
    let (ana, dirk, nora) = (notice(ANA), notice(DIRK), notice(NORA));
    let body = template(&ana)["body"].to_string();
    for shown in [
        "Summer launch kit",
        "SUMMER26",
        "Iberia",
        "Hero banner ES (Iberia): ",
        "Poster: ",
        &format!("{}/share/", stack.dam.url()),
    ] {
        assert!(body.contains(shown), "{shown} missing from {body}");
    }
    assert!(
        !body.contains("Hero banner DE"),
        "only Ana's region: {body}"
    );

    // Ana confirms receipt.
    stack
        .wa
        .user(ANA)
        .tap_quick_reply("wamid.CP-ANA", &payload(&ana, 0), "Confirm receipt");
    // Dirk asks for another format and gets the list of renditions.
    stack.wa.user(DIRK).tap_quick_reply(
        "wamid.CP-DIRK",
        &payload(&dirk, 1),
        "Request another format",
    );
    // Nora flags an issue and is asked what it is.
    stack
        .wa
        .user(NORA)
        .tap_quick_reply("wamid.CP-NORA", &payload(&nora, 2), "Flag an issue");
    stack.settle_answers().await;
    let answers = stack.sent().await;
    assert!(
        text(to(&answers, &stack.who(ANA))[0])
            .contains("receipt of Summer launch kit is confirmed"),
        "{answers:?}"
    );
    let list = content(to(&answers, &stack.who(DIRK))[0]);
    assert_eq!(list["type"], "list", "{list}");
    let rows = list["sections"][0]["rows"]
        .as_array()
        .expect("rows")
        .clone();
    let titles: Vec<&str> = rows.iter().filter_map(|r| r["title"].as_str()).collect();
    assert_eq!(titles, ["Web JPEG", "Print PDF", "Square social"]);
    assert!(
        text(to(&answers, &stack.who(NORA))[0]).contains("Reply with a short description"),
        "{answers:?}"
    );

    let print = rows[1]["id"].as_str().expect("row id");
    stack
        .wa
        .user(DIRK)
        .pick_list_row("wamid.CP-LIST", print, "Print PDF");
    stack
        .wa
        .user(NORA)
        .send_text("The Swedish banner still shows the spring price");
    stack.settle_answers().await;
    let answers = stack.sent().await;
    // The chosen rendition arrives: one PDF document per member asset of Dirk's region.
    let documents: Vec<Value> = to(&answers, &stack.who(DIRK))
        .iter()
        .map(|r| content(r))
        .filter(|c| c["type"] == "media")
        .collect();
    assert_eq!(documents.len(), 2, "Hero banner DE and Poster: {answers:?}");
    for document in &documents {
        assert_eq!(document["kind"], "document", "{document}");
        assert!(
            document["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with("-TR1.pdf")),
            "{document}"
        );
        let link = document["source"]["link"].as_str().expect("a link");
        let served = reqwest::get(link)
            .await
            .expect("the link")
            .text()
            .await
            .expect("body");
        assert!(served.ends_with(" as TR1"), "{served}");
    }
    assert!(
        text(to(&answers, &stack.who(NORA))[0])
            .contains("your issue with Summer launch kit is logged"),
        "{answers:?}"
    );

    let log = stack.comments(&id);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    for expected in [
        "Campaign SUMMER26: receipt confirmed via WhatsApp by Ana Ruiz (Iberia) at ",
        "Campaign SUMMER26: format Print PDF requested via WhatsApp by Dirk Bauer (DACH) at ",
        "Campaign SUMMER26: issue flagged via WhatsApp by Nora Lind (Nordics) at ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected} missing: {log}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Campaign SUMMER26: issue flagged")
                && l.ends_with(" UTC: The Swedish banner still shows the spring price")),
        "{log}"
    );

    // The status per region: on WhatsApp for a regional lead, and from the operator command.
    stack.wa.user(ANA).send_text("status SUMMER26");
    stack.settle_answers().await;
    let status = stack.sent().await;
    let status = text(to(&status, &stack.who(ANA))[0]);
    for line in [
        "Summer launch kit (campaign SUMMER26, version ",
        "Iberia: notified 1 (Ana Ruiz), confirmed 1 (Ana Ruiz), format requested 0, flagged 0",
        "DACH: notified 1 (Dirk Bauer), confirmed 0, format requested 1 (Dirk Bauer: Print PDF), flagged 0",
        "Nordics: notified 1 (Nora Lind), confirmed 0, format requested 0, flagged 1 (Nora Lind: The Swedish banner still shows the spring price)",
    ] {
        assert!(status.contains(line), "{line} missing from {status}");
    }
    let report = connector::campaign_cmd::status(&stack.store(), "summer26")
        .await
        .expect("the operator command");
    assert_eq!(report.text().trim_end(), status);
}

#[tokio::test]
async fn the_same_approval_delivered_twice_reaches_each_phone_once_and_a_format_pick_arrives() {
    let stack = Stack::start(true).await;
    let id = stack.package().await;
    stack.approve(&id).await;
    // The same domain event again, as a redelivery of campaign.fifo would bring it.
    let mut event = body_of("campaign-rollout/package-approved.json");
    event["asset"] = json!(id);
    event["version"] = json!(stack.version(&id));
    stack
        .enqueue(&event.to_string(), &id, "redelivered-approval")
        .await;
    stack.drain("CampaignQueue").await;
    stack.deliver().await;
    for phone in [ANA, DIRK, NORA] {
        let lines = stack.phone(phone);
        assert_eq!(lines.len(), 1, "{phone}: {lines:?}");
        assert_eq!(lines[0].1, "template campaign_rollout_ready");
    }

    // On the phone: the list of renditions, then the picked one as a document.
    let dirk = stack.phone(DIRK);
    let version = stack.version(&id);
    stack.wa.user(DIRK).tap_quick_reply(
        &dirk[0].0,
        &format!("cp|format|{id}|{version}"),
        "Request another format",
    );
    stack.settle_answers().await;
    stack.deliver().await;
    let dirk = stack.phone(DIRK);
    assert_eq!(dirk.len(), 2, "{dirk:?}");
    assert!(
        dirk[1].1.starts_with("Which format of Summer launch kit"),
        "{dirk:?}"
    );
    stack.wa.user(DIRK).pick_list_row(
        &dirk[1].0,
        &format!("cp|fmt:TR1|{id}|{version}"),
        "Print PDF",
    );
    stack.settle_answers().await;
    stack.deliver().await;
    let dirk = stack.phone(DIRK);
    let documents: Vec<&str> = dirk
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| s.starts_with("document "))
        .collect();
    assert_eq!(
        documents,
        [
            "document Hero banner DE (Print PDF)",
            "document Poster (Print PDF)"
        ],
        "{dirk:?}"
    );
}

#[tokio::test]
async fn a_redelivered_answer_writes_one_comment() {
    let stack = Stack::start(false).await;
    let id = stack.package().await;
    stack.approve(&id).await;
    stack.sent().await;
    let mut answer = body_of("campaign-rollout/confirm-tap.json");
    let ana = stack.who(ANA);
    let version = stack.version(&id);
    let button = format!("cp|confirm|{id}|{version}");
    answer["user"] = json!(ana.as_str());
    answer["answers"] =
        json!({"flow": "campaign", "subject": id, "version": version, "recipient": ana.as_str()});
    answer["button"] = json!(button);
    answer["item"]["button"]["payload"] = json!(button);
    for delivery in ["first", "again"] {
        stack
            .enqueue(&answer.to_string(), ana.as_str(), delivery)
            .await;
        stack.drain("CampaignQueue").await;
    }
    let log = stack.comments(&id);
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.starts_with(
            "Campaign SUMMER26: receipt confirmed via WhatsApp by Ana Ruiz (Iberia) at 2026-12-02 "
        ),
        "{log}"
    );
    // Both deliveries ask for the same thanks; the sender sends one send key once.
    let thanks = stack.sent().await;
    let keys: std::collections::BTreeSet<_> = thanks.iter().map(|r| r.key.encode()).collect();
    assert_eq!(keys.len(), 1, "{thanks:?}");
}

#[tokio::test]
async fn an_answer_from_someone_not_notified_is_refused_politely_and_writes_nothing() {
    let stack = Stack::start(false).await;
    let id = stack.package().await;
    stack.approve(&id).await;
    let sent = stack.sent().await;
    let ana = to(&sent, &stack.who(ANA))[0].clone();
    // Zed covers France, not one of the package's regions; Ana's buttons from Zed's phone.
    stack
        .wa
        .user(ZED)
        .tap_quick_reply("wamid.CP-ZED", &payload(&ana, 0), "Confirm receipt");
    stack.settle_answers().await;
    let told = stack.sent().await;
    let told = to(&told, &stack.who(ZED));
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        text(told[0]).contains("was not sent to you")
            && text(told[0]).contains("Nothing was changed"),
        "{}",
        text(told[0])
    );
    assert_eq!(stack.comments(&id), "", "nothing written on the package");
    let statuses = shared::ports::CampaignStore::statuses(&stack.store(), &id)
        .await
        .expect("statuses");
    assert!(
        statuses.iter().all(|s| s.confirmed_at_ms.is_none()),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_opted_out_regional_contact_is_not_messaged() {
    let stack = Stack::start(false).await;
    let id = stack.package().await;
    stack.approve(&id).await;
    let sent = stack.sent().await;
    assert!(to(&sent, &stack.who(OLLE)).is_empty(), "{sent:?}");
    assert_eq!(
        to(&sent, &stack.who(NORA)).len(),
        1,
        "Nora covers Nordics too"
    );
    let rollout = shared::ports::CampaignStore::get(&stack.store(), &id)
        .await
        .expect("rollout")
        .expect("stored");
    assert!(rollout.recipient(&stack.who(OLLE)).is_none());
}
