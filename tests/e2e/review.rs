//! Flows 1 and 7 end to end: the Orange Logic simulator's webhooks reach change detection, the
//! queue runner feeds `notify-review-request` and `alert-asset-issue`, approvers answer from the
//! WhatsApp simulator through `whatsapp-webhook` and `route-inbound`; the tests read what each
//! person is sent (`outbound.fifo`, what the one sender sends) and what the DAM ends with.

use e2e::{APP_SECRET, TestEnv};
use orange_logic_sim::{SimConfig as DamConfig, Simulator as DamSim, WebhookTarget};
use serde_json::Value;
use shared::adapters::directory::DynamoContactDirectory;
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::orange_logic::{Auth, OrangeLogicClient, Settings, TOKEN_PATH};
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::{MessageFlow, OutboundRequest};
use shared::flows::dam_log;
use shared::ports::ContactDirectory;
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::ConnectorSecrets;
use std::net::SocketAddr;
use std::time::Duration;
use whatsapp_sim::{SimConfig as WaConfig, Simulator as WaSim};

const NOTIFICATIONS: &str = "109876543210987";
const ADA: &str = "447700900101";
const BO: &str = "447700900102";
const CY: &str = "447700900103";
const OWNER: &str = "447700900201";
const FALLBACK: &str = "447700900999";
const COMMENTS: &str = "Custom.WhatsAppLog";
const STATUS: &str = "CoreField.Status";

struct Stack {
    dam: DamSim,
    wa: WaSim,
    env: TestEnv,
    pseudonyms: Pseudonymizer,
}

impl Stack {
    async fn start() -> Self {
        Self::start_with(false).await
    }

    /// `phones`: the stack's sender sends through Graph to the WhatsApp simulator, which knows the
    /// catalogue's templates, so the tests read what each simulated phone shows.
    async fn start_with(phones: bool) -> Self {
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
        stack.person(ADA, "Ada Approver", Role::Approver).await;
        stack.person(BO, "Bo Approver", Role::Approver).await;
        stack.person(CY, "Cy Bystander", Role::Approver).await;
        stack.person(OWNER, "Olu Owner", Role::Owner).await;
        stack
    }

    fn who(&self, phone: &str) -> UserPseudonym {
        self.pseudonyms.pseudonym(phone)
    }

    async fn person(&self, phone: &str, name: &str, role: Role) {
        let mut contact = Contact::new(self.who(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone).expect("phone"));
        contact.name = Some(name.into());
        contact.roles = [role].into_iter().collect();
        DynamoContactDirectory::new(
            aws_sdk_dynamodb::Client::new(&self.env.stack.aws),
            self.env.stack.resources.tables["ContactsTable"].clone(),
        )
        .put(&contact)
        .await
        .expect("directory");
    }

    /// A draft asset for Ada and Bo to review, its creation detected.
    async fn draft(&self, extra: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("CoreField.Title", "North pier at dusk"),
            ("CoreField.Photographer", "A. Field"),
            ("Custom.Campaign", "SUMMER26"),
            (
                "CoreField.UsageRights",
                "Web and social, EU, until 31 Aug 2027",
            ),
            ("Custom.ReviewDeadline", "2026-12-05T17:00:00"),
            ("Custom.Approvers", "+447700900101|+447700900102"),
            ("CoreField.Owner", "+447700900201"),
            (STATUS, "Draft"),
        ];
        for (k, v) in extra {
            fields.retain(|(f, _)| f != k);
            fields.push((k, v));
        }
        let id = self.dam.add_asset(&fields);
        self.settle_dam().await;
        id
    }

    async fn set_status(&self, id: &str, status: &str) {
        self.dam.edit(id, STATUS, status).expect("edit");
        self.settle_dam().await;
    }

    async fn settle_dam(&self) {
        assert!(self.dam.wait_for_webhooks(Duration::from_secs(10)).await);
        self.drain("DamEventsQueue").await;
    }

    async fn drain(&self, queue: &str) {
        self.env.drain_concurrently(queue, 20).await;
    }

    /// Lets route-inbound hand what the users sent to the review queue, and the flow handle it.
    async fn settle_answers(&self) {
        self.wa.idle().await;
        self.drain("InboundQueue").await;
        self.drain("ReviewQueue").await;
    }

    /// What the one sender has been asked to send since the last look (taken off the queue, as
    /// the sender takes it: a FIFO group stays blocked while a message of it is in flight).
    async fn sent(&self) -> Vec<OutboundRequest> {
        self.env.take_all("OutboundQueue").await
    }

    /// Lets the one sender deliver what the flows queued, then the statuses come back.
    async fn deliver(&self) {
        self.drain("OutboundQueue").await;
        self.wa.idle().await;
    }

    /// What the simulated phone of `phone` shows from the business, oldest first.
    fn phone(&self, phone: &str) -> Vec<(String, String)> {
        e2e::business_lines(&self.wa, phone)
    }

    fn field(&self, id: &str, field: &str) -> String {
        self.dam
            .asset(id)
            .expect("asset")
            .fields
            .get(field)
            .cloned()
            .unwrap_or_default()
    }
}

fn to<'a>(sent: &'a [OutboundRequest], who: &UserPseudonym) -> Vec<&'a OutboundRequest> {
    sent.iter().filter(|r| &r.key.recipient == who).collect()
}

fn text(request: &OutboundRequest) -> String {
    serde_json::to_value(&request.content).expect("json")["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn template(request: &OutboundRequest) -> Value {
    serde_json::to_value(&request.template).expect("json")
}

/// The quick-reply payloads of a review template: (approve, reject).
fn payloads(request: &OutboundRequest) -> (String, String) {
    let buttons = template(request)["buttons"].clone();
    let payload = |i: usize| {
        buttons[i]["payload"]
            .as_str()
            .unwrap_or_else(|| panic!("button {i}: {buttons}"))
            .to_owned()
    };
    (payload(0), payload(1))
}

/// Opens a review of a fresh asset; returns it and the review request each of Ada and Bo got.
async fn requested(stack: &Stack) -> (String, OutboundRequest, OutboundRequest) {
    let id = stack.draft(&[]).await;
    stack.set_status(&id, "Ready for Review").await;
    stack.drain("ReviewQueue").await;
    let sent = stack.sent().await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let ada = to(&sent, &stack.who(ADA)).pop().expect("Ada asked").clone();
    let bo = to(&sent, &stack.who(BO)).pop().expect("Bo asked").clone();
    (id, ada, bo)
}

#[tokio::test]
async fn two_approvers_get_the_request_one_approves_and_the_others_reject_is_already_decided() {
    let stack = Stack::start().await;
    let (id, ada, bo) = requested(&stack).await;
    assert_eq!(
        e2e::emf::total(
            &stack.env.stack.resources.stack_name,
            "notify-review-request",
            "review",
            "AlertsSent"
        ),
        2,
        "one review request per approver counted (EMF)"
    );
    for request in [&ada, &bo] {
        assert_eq!(request.key.flow, MessageFlow::Review);
        let body = template(request)["body"].to_string();
        for shown in [
            "North pier at dusk",
            "SUMMER26",
            "Web and social, EU, until 31 Aug 2027",
            "2026-12-05 17:00 UTC",
            &format!("{}/share/", stack.dam.url()),
        ] {
            assert!(body.contains(shown), "{shown} missing from {body}");
        }
    }
    // Cy is an approver in the directory but not on this asset's approvers field.
    let (approve, _) = payloads(&ada);
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.REVIEW-ADA", &approve, "Approve");
    stack.settle_answers().await;
    assert_eq!(stack.field(&id, STATUS), "Approved");
    let log = stack.field(&id, COMMENTS);
    assert!(
        log.starts_with("Approved via WhatsApp by Ada Approver at "),
        "{log}"
    );
    let confirmations = stack.sent().await;
    assert!(text(to(&confirmations, &stack.who(ADA))[0]).contains("is approved"));
    assert!(text(to(&confirmations, &stack.who(BO))[0]).contains("was approved by Ada Approver"));

    let (_, reject) = payloads(&bo);
    stack
        .wa
        .user(BO)
        .tap_quick_reply("wamid.REVIEW-BO", &reject, "Reject");
    stack.settle_answers().await;
    let told = stack.sent().await;
    let told = to(&told, &stack.who(BO));
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        text(told[0]).contains("already decided by Ada Approver at"),
        "{}",
        text(told[0])
    );
    assert_eq!(stack.field(&id, STATUS), "Approved");
    assert_eq!(stack.field(&id, COMMENTS), log, "the DAM is unchanged");
}

#[tokio::test]
async fn two_approvers_tapping_at_once_make_one_decision() {
    let stack = Stack::start().await;
    let (id, ada, bo) = requested(&stack).await;
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.R-A", &payloads(&ada).0, "Approve");
    stack
        .wa
        .user(BO)
        .tap_quick_reply("wamid.R-B", &payloads(&bo).0, "Approve");
    stack.settle_answers().await;
    let log = stack.field(&id, COMMENTS);
    assert_eq!(log.lines().count(), 1, "one decision in the DAM: {log}");
    assert_eq!(stack.field(&id, STATUS), "Approved");
    let sent = stack.sent().await;
    let refused: Vec<_> = sent
        .iter()
        .filter(|r| text(r).contains("already decided by"))
        .collect();
    assert_eq!(refused.len(), 1, "{sent:?}");
}

#[tokio::test]
async fn a_rejection_asks_for_the_reason_and_writes_it_to_the_dam() {
    let stack = Stack::start().await;
    let (id, ada, _) = requested(&stack).await;
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.R-A", &payloads(&ada).1, "Reject");
    stack.settle_answers().await;
    let asked = stack.sent().await;
    assert!(
        text(to(&asked, &stack.who(ADA))[0]).contains("Reply with the reason"),
        "{asked:?}"
    );
    assert_eq!(
        stack.field(&id, STATUS),
        "Ready for Review",
        "not decided yet"
    );

    stack
        .wa
        .user(ADA)
        .send_text("The logo is cropped on the left");
    stack.settle_answers().await;
    assert_eq!(stack.field(&id, STATUS), "Rejected");
    let log = stack.field(&id, COMMENTS);
    assert!(
        log.starts_with("Rejected via WhatsApp by Ada Approver at ")
            && log.ends_with(": The logo is cropped on the left"),
        "{log}"
    );
    let confirmations = stack.sent().await;
    assert!(text(to(&confirmations, &stack.who(BO))[0]).contains("The logo is cropped"));

    // The rejection reaches the owner, with the reviewer's reason.
    stack.settle_dam().await;
    stack.drain("IssueAlertQueue").await;
    let alerts = stack.sent().await;
    let owner = to(&alerts, &stack.who(OWNER));
    assert_eq!(owner.len(), 1, "{alerts:?}");
    assert!(
        template(owner[0])["body"]
            .to_string()
            .contains("Ada Approver: The logo is cropped on the left"),
        "{}",
        template(owner[0])
    );
}

#[tokio::test]
async fn a_tap_from_someone_not_asked_or_on_an_older_version_changes_nothing() {
    let stack = Stack::start().await;
    let (id, ada, _) = requested(&stack).await;
    let (approve_v1, _) = payloads(&ada);

    // Cy was not asked: the same buttons from Cy's phone decide nothing.
    stack
        .wa
        .user(CY)
        .tap_quick_reply("wamid.R-C", &approve_v1, "Approve");
    stack.settle_answers().await;
    let told = stack.sent().await;
    assert!(
        text(to(&told, &stack.who(CY))[0]).contains("you were not asked"),
        "{told:?}"
    );
    assert_eq!(stack.field(&id, STATUS), "Ready for Review");

    // A new version goes to review: the first version's buttons are refused.
    stack.set_status(&id, "Draft").await;
    stack
        .dam
        .new_version(&id, "north-pier-v2.jpg")
        .expect("version");
    stack.set_status(&id, "Ready for Review").await;
    stack.drain("ReviewQueue").await;
    let second = stack.sent().await;
    assert_eq!(second.len(), 2, "{second:?}");
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.R-A", &approve_v1, "Approve");
    stack.settle_answers().await;
    let told = stack.sent().await;
    assert!(
        text(to(&told, &stack.who(ADA))[0]).contains("earlier version"),
        "{told:?}"
    );
    assert_eq!(stack.field(&id, STATUS), "Ready for Review");
    assert_eq!(stack.field(&id, COMMENTS), "");
}

#[tokio::test]
async fn no_answer_by_the_reminder_time_reminds_each_approver_once() {
    let stack = Stack::start().await;
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(2))
        .expect("time")
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let id = stack.draft(&[("Custom.ReviewDeadline", &soon)]).await;
    stack.set_status(&id, "Ready for Review").await;
    stack.drain("ReviewQueue").await;
    assert_eq!(stack.sent().await.len(), 2);

    let first = stack
        .env
        .stack
        .fire_schedule("NotifyReviewRequestFunction")
        .await
        .expect("reminders");
    let second = stack
        .env
        .stack
        .fire_schedule("NotifyReviewRequestFunction")
        .await
        .expect("reminders again");
    assert_eq!(first["reminded"], 1);
    assert_eq!(second["reminded"], 0);
    let reminders = stack.sent().await;
    for approver in [ADA, BO] {
        let got = to(&reminders, &stack.who(approver));
        assert_eq!(got.len(), 1, "{reminders:?}");
        assert!(got[0].key.version.ends_with("#reminder"));
    }
}

#[tokio::test]
async fn a_rejection_in_the_dam_alerts_the_owner_once_also_when_the_webhook_comes_twice_or_is_lost()
{
    let stack = Stack::start().await;
    let twice = stack.draft(&[]).await;
    stack.dam.duplicate_webhooks(true);
    stack.set_status(&twice, "Rejected").await;
    stack.dam.duplicate_webhooks(false);

    let lost = stack.draft(&[("CoreField.Title", "South pier")]).await;
    stack.dam.drop_webhooks(true);
    stack.dam.edit(&lost, STATUS, "Rejected").expect("edit");
    stack
        .env
        .stack
        .fire_schedule("DetectAssetChangesFunction")
        .await
        .expect("poll");
    stack.dam.drop_webhooks(false);

    stack.drain("IssueAlertQueue").await;
    let alerts = stack.sent().await;
    let owner = to(&alerts, &stack.who(OWNER));
    assert_eq!(owner.len(), 2, "one per asset: {alerts:?}");
    // Counted as queued: a duplicate webhook may queue the same send key again (sent once).
    assert!(
        e2e::emf::total(
            &stack.env.stack.resources.stack_name,
            "alert-asset-issue",
            "issue-alert",
            "AlertsSent"
        ) >= 2,
        "issue alerts counted (EMF)"
    );
    for request in &owner {
        let body = template(request)["body"].to_string();
        assert!(body.contains("rejected in review"), "{body}");
        assert!(
            body.contains(&format!("{}/share/", stack.dam.url())),
            "{body}"
        );
    }
    let titles: Vec<String> = owner
        .iter()
        .map(|r| template(r)["body"][0].to_string())
        .collect();
    assert!(
        titles.iter().any(|t| t.contains("North pier at dusk")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("South pier")),
        "{titles:?}"
    );
    for id in [&twice, &lost] {
        let log = stack.field(id, COMMENTS);
        assert_eq!(log.lines().count(), 1, "one note: {log}");
        assert!(log.contains("sent to Olu Owner"), "{log}");
    }
}

#[tokio::test]
async fn missing_metadata_alerts_name_the_missing_fields() {
    let stack = Stack::start().await;
    let id = stack.draft(&[("CoreField.Photographer", "")]).await;
    stack.set_status(&id, "Ready for Review").await;
    stack.drain("IssueAlertQueue").await;
    let alerts = stack.sent().await;
    let owner = to(&alerts, &stack.who(OWNER));
    assert_eq!(owner.len(), 1, "{alerts:?}");
    let body = template(owner[0])["body"].to_string();
    assert!(
        body.contains("required fields are empty: Photographer"),
        "{body}"
    );
}

#[tokio::test]
async fn an_owner_not_in_the_directory_alerts_the_fallback_contact() {
    let stack = Stack::start().await;
    let id = stack.draft(&[("CoreField.Owner", "+447700900777")]).await;
    stack.set_status(&id, "Rejected").await;
    stack.drain("IssueAlertQueue").await;
    let alerts = stack.sent().await;
    assert_eq!(to(&alerts, &stack.who(FALLBACK)).len(), 1, "{alerts:?}");
    assert!(stack.field(&id, COMMENTS).contains("fallback team contact"));
}

#[tokio::test]
async fn two_comment_appends_racing_on_one_asset_keep_both_lines() {
    let stack = Stack::start().await;
    let id = stack.dam.add_asset(&[("CoreField.Title", "Race")]);
    // Every DAM call takes a while, so the two read-append-write cycles overlap.
    stack.dam.slow(Duration::from_millis(150));
    let client = |n: u8| {
        OrangeLogicClient::new(Settings::new(
            stack.dam.url(),
            Auth::ClientCredentials {
                token_path: TOKEN_PATH.into(),
                client_id: "connector-local".into(),
                client_secret: ConnectorSecrets::from_json(
                    &std::fs::read_to_string(
                        local::moto::workspace_root().join("local/secrets.json"),
                    )
                    .expect("secrets"),
                )
                .expect("secrets")
                .orange_logic_client_secret
                .expect("an Orange Logic secret"),
            },
        ))
        .unwrap_or_else(|e| panic!("client {n}: {e}"))
    };
    let (first, second) = (client(1), client(2));
    let leases = || {
        DynamoIdempotencyStore::new(
            aws_sdk_dynamodb::Client::new(&stack.env.stack.aws),
            stack.env.stack.resources.tables["CommentLeasesTable"].clone(),
        )
    };
    let (a, b) = (leases(), leases());
    let (left, right) = tokio::join!(
        dam_log::append_line(&a, &first, &id, COMMENTS, "line from the review flow"),
        dam_log::append_line(&b, &second, &id, COMMENTS, "line from the issue alert"),
    );
    left.expect("first append");
    right.expect("second append");
    let log = stack.field(&id, COMMENTS);
    assert!(
        log.lines().any(|l| l == "line from the review flow"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l == "line from the issue alert"),
        "{log}"
    );
}

#[tokio::test]
async fn on_the_phones_one_approver_approves_and_the_other_is_told_it_is_already_decided() {
    let stack = Stack::start_with(true).await;
    let id = stack.draft(&[]).await;
    stack.set_status(&id, "Ready for Review").await;
    stack.drain("ReviewQueue").await;
    stack.deliver().await;
    let ada = stack.phone(ADA);
    let bo = stack.phone(BO);
    for lines in [&ada, &bo] {
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].1, "template asset_review_request");
    }
    assert!(stack.phone(CY).is_empty(), "Cy was not asked");

    // The quick replies carry the button ids the flow put in the template.
    let version = stack.field(&id, "CoreField.Version");
    stack
        .wa
        .user(ADA)
        .tap_quick_reply(&ada[0].0, &format!("rv|approve|{id}|{version}"), "Approve");
    stack.settle_answers().await;
    stack.deliver().await;
    assert_eq!(stack.field(&id, STATUS), "Approved");
    let log = stack.field(&id, COMMENTS);
    assert!(
        log.starts_with("Approved via WhatsApp by Ada Approver at "),
        "{log}"
    );
    let ada = stack.phone(ADA);
    assert!(
        ada.last().is_some_and(|l| l.1.contains("is approved")),
        "{ada:?}"
    );

    stack
        .wa
        .user(BO)
        .tap_quick_reply(&bo[0].0, &format!("rv|reject|{id}|{version}"), "Reject");
    stack.settle_answers().await;
    stack.deliver().await;
    let bo = stack.phone(BO);
    assert!(
        bo.iter()
            .any(|l| l.1.contains("already decided by Ada Approver at")),
        "{bo:?}"
    );
    assert_eq!(stack.field(&id, STATUS), "Approved");
    assert_eq!(stack.field(&id, COMMENTS), log, "the DAM is unchanged");
}

#[tokio::test]
async fn an_approver_who_taps_reject_then_approve_is_no_longer_asked_for_a_reason() {
    let stack = Stack::start().await;
    let (id, ada, _) = requested(&stack).await;
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.R-A", &payloads(&ada).1, "Reject");
    stack.settle_answers().await;
    stack
        .wa
        .user(ADA)
        .tap_quick_reply("wamid.R-A", &payloads(&ada).0, "Approve");
    stack.settle_answers().await;
    assert_eq!(stack.field(&id, STATUS), "Approved");
    stack.sent().await;
    // A later text is not a rejection reason: the router keeps it, the review hears nothing.
    stack.wa.user(ADA).send_text("thanks, see you tomorrow");
    stack.settle_answers().await;
    assert!(to(&stack.sent().await, &stack.who(ADA)).is_empty());
    assert_eq!(stack.field(&id, COMMENTS).lines().count(), 1);
}
