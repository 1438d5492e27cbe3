//! Flow 5 end to end: a rep writes `share … to …` from the WhatsApp simulator; the message goes
//! through `whatsapp-webhook` and `route-inbound` to `share-approved-asset`, which reads the asset
//! in the Orange Logic simulator; the sender delivers to the simulated phones, whose statuses come
//! back through the webhook to `track-delivery`, which marks the audit; `connector audit export`
//! prints it. The operator API is called through the local front and its JWT authorizer.

use connector::audit_cmd::{self, AuditCommand};
use connector::target::{Target, TargetOptions};
use e2e::{APP_SECRET, TestEnv};
use orange_logic_sim::{SimConfig as DamConfig, Simulator as DamSim};
use shared::adapters::directory::DynamoContactDirectory;
use shared::config::Env;
use shared::domain::contact::{Contact, OptIn, Role, WhatsAppAddress};
use shared::ports::ContactDirectory;
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::ConnectorSecrets;
use std::net::SocketAddr;
use std::time::Duration;
use whatsapp_sim::{SimConfig as WaConfig, Simulator as WaSim};

const SHARING: &str = "109876543210987";
const MARIA: &str = "447700900401";
const CLIENT: &str = "447700900402";
const STRANGER: &str = "447700900403";
const COMMENTS: &str = "Custom.WhatsAppLog";

struct Stack {
    dam: DamSim,
    wa: WaSim,
    env: TestEnv,
    pseudonyms: Pseudonymizer,
}

impl Stack {
    async fn start() -> Self {
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
            options.graph_base_url = Some(format!("http://127.0.0.1:{graph_port}"));
        })
        .await;
        let mut config = WaConfig::new("local-graph-token", APP_SECRET);
        config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        config.phone_number_id = SHARING.into();
        config.addr = SocketAddr::from(([127, 0, 0, 1], graph_port));
        config.status_delay = Duration::from_millis(5);
        config.templates.extend(whatsapp_sim::catalogue_templates(
            &local::moto::workspace_root().join("templates"),
        ));
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
            .person(MARIA, "Maria Sales", Some(Role::Rep), true)
            .await;
        stack.person(CLIENT, "Chris Client", None, true).await;
        stack.person(STRANGER, "Sam Stranger", None, false).await;
        stack
    }

    fn who(&self, phone: &str) -> UserPseudonym {
        self.pseudonyms.pseudonym(phone)
    }

    async fn person(&self, phone: &str, name: &str, role: Option<Role>, opted_in: bool) {
        let mut contact = Contact::new(self.who(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone).expect("phone"));
        contact.name = Some(name.into());
        contact.roles = role.into_iter().collect();
        contact.opted_in = opted_in.then(|| OptIn {
            at_ms: 1_764_000_000_000,
            source: "import:customers.csv".into(),
        });
        DynamoContactDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.env.stack.aws),
            self.env.stack.resources.tables["ContactsTable"].clone(),
        )
        .put(&contact)
        .await
        .expect("directory");
    }

    /// An asset that passes every rule, with `changes` applied.
    fn asset(&self, title: &str, keywords: &str, changes: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("CoreField.Title", title),
            ("CoreField.Keywords", keywords),
            ("CoreField.Status", "Approved"),
            ("CoreField.ExpirationDate", "2099-12-31"),
            ("Custom.BrandCompliant", "yes"),
            ("Custom.ExternalUse", "yes"),
        ];
        for (field, value) in changes {
            fields.retain(|(f, _)| f != field);
            fields.push((field, value));
        }
        self.dam.add_asset(&fields)
    }

    async fn drain(&self, queue: &str) {
        self.env.drain_concurrently(queue, 20).await;
    }

    /// Everything that follows what the phones sent: routing, the flow, the sender, the
    /// statuses and their tracking.
    async fn settle(&self) {
        for _ in 0..2 {
            self.wa.idle().await;
            self.drain("InboundQueue").await;
            self.drain("SharingQueue").await;
            self.drain("OutboundQueue").await;
            self.wa.idle().await;
            self.drain("InboundQueue").await;
            self.drain("DeliveryStatusQueue").await;
        }
    }

    async fn rep_says(&self, text: &str) {
        self.wa.user(MARIA).send_text(text);
        self.settle().await;
    }

    /// What the simulated phone shows from the business, oldest first.
    fn phone(&self, phone: &str) -> Vec<String> {
        e2e::business_lines(&self.wa, phone)
            .into_iter()
            .map(|(_, summary)| summary)
            .collect()
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

    async fn export(&self) -> String {
        let target = Target::new(
            &self.env.stack.aws,
            &TargetOptions {
                stack: Some(self.env.stack.resources.stack_name.clone()),
            },
            &Env::new(|_: &str| None),
        )
        .expect("target");
        let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
        let words: Vec<String> = ["export", "--from", &today, "--to", &today]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        let command: AuditCommand = audit_cmd::parse(&words).expect("audit export");
        let (csv, _) = audit_cmd::run(&target, &command).await.expect("export");
        csv
    }
}

#[tokio::test]
async fn sharing_an_expired_unapproved_non_compliant_or_old_version_asset_is_refused_with_the_rule_that_failed()
 {
    let stack = Stack::start().await;
    let expired = stack.asset(
        "Winter flyer",
        "winter",
        &[("CoreField.ExpirationDate", "2020-01-31")],
    );
    let draft = stack.asset("Draft poster", "draft", &[("CoreField.Status", "Draft")]);
    let off_brand = stack.asset(
        "Old logo banner",
        "banner",
        &[("Custom.BrandCompliant", "no")],
    );
    let newer = stack.asset("Price list 2026", "prices", &[]);
    let old = stack.asset(
        "Price list 2025",
        "prices2025",
        &[("Custom.SupersededBy", &newer)],
    );
    for id in [&expired, &draft, &off_brand, &old] {
        stack.rep_says(&format!("share {id} to +{CLIENT}")).await;
    }
    let answers = stack.phone(MARIA).join("\n");
    for expected in [
        format!("Not sent: Winter flyer ({expired}) expired on 2020-01-31."),
        format!("Not sent: Draft poster ({draft}) is not approved (its status is Draft)."),
        format!("Not sent: Old logo banner ({off_brand}) is not brand-compliant."),
        format!(
            "Not sent: Price list 2025 ({old}) is not the current version; {newer} replaced it."
        ),
    ] {
        assert!(answers.contains(&expected), "{expected} not in:\n{answers}");
    }
    assert!(stack.phone(CLIENT).is_empty(), "{:?}", stack.phone(CLIENT));
    assert_eq!(stack.export().await.lines().count(), 1, "only the header");
    for id in [&expired, &draft, &off_brand, &old] {
        assert!(stack.comments(id).is_empty(), "no usage entry on {id}");
    }
}

#[tokio::test]
async fn an_approved_asset_reaches_the_recipient_and_the_audit_csv_shows_rep_pseudonym_version_sent_delivered_and_read()
 {
    let stack = Stack::start().await;
    let id = stack.asset("Spring brochure", "spring|brochure", &[]);
    let version = stack
        .dam
        .asset(&id)
        .expect("asset")
        .fields
        .get("CoreField.Version")
        .cloned()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "current".into());
    stack.rep_says(&format!("share {id} to +{CLIENT}")).await;

    let client = stack.phone(CLIENT);
    assert_eq!(client.len(), 1, "{client:?}");
    assert!(client[0].contains("asset_share"), "{client:?}");
    let rep = stack.phone(MARIA).join("\n");
    assert!(
        rep.contains(&format!("Sent Spring brochure (version {version})")),
        "{rep}"
    );
    let usage = stack.comments(&id);
    assert!(
        usage.contains(&format!(
            "WhatsApp share: Maria Sales shared version {version} with {}",
            stack.who(CLIENT)
        )),
        "{usage}"
    );

    let csv = stack.export().await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row[1], id, "{csv}");
    assert_eq!(row[2], version, "{csv}");
    assert_eq!(row[3], "Maria Sales", "{csv}");
    assert_eq!(row[4], stack.who(MARIA).as_str(), "{csv}");
    assert_eq!(row[5], stack.who(CLIENT).as_str(), "{csv}");
    assert!(row[6].starts_with("wamid."), "{csv}");
    for (column, name) in [(7, "sent"), (8, "delivered"), (9, "read")] {
        assert!(row[column].ends_with('Z'), "{name} is empty: {csv}");
    }
    assert!(!csv.contains(CLIENT), "no clear number in the export");
}

#[tokio::test]
async fn a_recipient_who_has_not_opted_in_is_refused_and_gets_nothing() {
    let stack = Stack::start().await;
    let id = stack.asset("Spring brochure", "spring", &[]);
    stack.rep_says(&format!("share {id} to +{STRANGER}")).await;
    let rep = stack.phone(MARIA).join("\n");
    assert!(rep.contains("has not opted in"), "{rep}");
    assert!(stack.phone(STRANGER).is_empty());
}

#[tokio::test]
async fn words_matching_several_assets_get_a_list_and_the_pick_is_sent() {
    let stack = Stack::start().await;
    let _a4 = stack.asset("Catalogue A4", "catalogue|print", &[]);
    let mobile = stack.asset("Catalogue mobile", "catalogue|mobile", &[]);
    let request = stack
        .wa
        .user(MARIA)
        .send_text(&format!("share catalogue to +{CLIENT}"));
    stack.settle().await;
    assert!(stack.phone(CLIENT).is_empty(), "nothing before the pick");
    let user = stack
        .wa
        .users()
        .into_iter()
        .find(|u| u.wa_id.as_deref() == Some(MARIA))
        .expect("Maria's phone");
    let list = user
        .lines
        .iter()
        .rev()
        .find(|l| l.direction == "out")
        .expect("the list");
    assert_eq!(list.kind, "interactive", "{list:?}");
    assert!(
        list.summary
            .contains("2 assets match. Which one should go?"),
        "{}",
        list.summary
    );
    // The row id the flow made for the mobile catalogue: flow, action, asset, request.
    let pick = format!("sh|pick|{mobile}|{request}");
    stack
        .wa
        .user(MARIA)
        .pick_list_row(&list.id, &pick, "Catalogue mobile");
    stack.settle().await;
    let client = stack.phone(CLIENT);
    assert_eq!(client.len(), 1, "{client:?}");
    let csv = stack.export().await;
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.contains(&mobile)),
        "{csv}"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_of_the_same_request_shares_once() {
    let stack = Stack::start().await;
    let id = stack.asset("Spring brochure", "spring", &[]);
    let file: serde_json::Value =
        serde_json::from_str(&e2e::event_file("share-approved-asset/share-command.json"))
            .expect("event file");
    let mut body: serde_json::Value =
        serde_json::from_str(file["Records"][0]["body"].as_str().expect("body")).expect("body");
    body["user"] = serde_json::json!(stack.who(MARIA).as_str());
    body["reply_address"] = serde_json::json!(format!("+{MARIA}"));
    body["received_at_ms"] = serde_json::json!(jiff::Timestamp::now().as_millisecond());
    body["item"]["from"] = serde_json::json!(MARIA);
    body["item"]["text"]["body"] = serde_json::json!(format!("share {id} to +{CLIENT}"));
    let url = stack
        .env
        .stack
        .resources
        .queue_url("SharingQueue")
        .expect("queue");
    // The same request twice, as a redelivery (a new message id and deduplication id).
    for dedup in ["first", "again"] {
        stack
            .env
            .stack
            .sqs()
            .send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .message_group_id(stack.who(MARIA).as_str())
            .message_deduplication_id(dedup)
            .send()
            .await
            .expect("send");
        stack.settle().await;
    }
    assert_eq!(stack.phone(CLIENT).len(), 1, "{:?}", stack.phone(CLIENT));
    assert_eq!(stack.export().await.lines().count(), 2, "one audit row");
    assert_eq!(
        stack.comments(&id).matches("WhatsApp share:").count(),
        1,
        "one usage entry"
    );
}

#[tokio::test]
async fn the_share_api_without_credentials_answers_401_and_nothing_is_sent() {
    let stack = Stack::start().await;
    let id = stack.asset("Spring brochure", "spring", &[]);
    let http = reqwest::Client::new();
    let url = stack.env.stack.url("/share");
    let body = serde_json::json!({"asset": id, "to": format!("+{CLIENT}")});
    let anonymous = http.post(&url).json(&body).send().await.expect("POST");
    assert_eq!(anonymous.status().as_u16(), 401);
    let forged = http
        .post(&url)
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status().as_u16(), 401);
    stack.settle().await;
    assert_eq!(stack.env.queue_depth("OutboundQueue").await, 0);
    assert!(stack.phone(CLIENT).is_empty());
    assert_eq!(stack.export().await.lines().count(), 1, "only the header");

    // With the rep's token the same request shares.
    let shared = http
        .post(&url)
        .bearer_auth(stack.env.stack.operator_token(&format!("+{MARIA}")))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = shared.status().as_u16();
    let answer: serde_json::Value = shared.json().await.expect("json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "shared", "{answer}");
    stack.settle().await;
    assert_eq!(stack.phone(CLIENT).len(), 1, "{:?}", stack.phone(CLIENT));
}
