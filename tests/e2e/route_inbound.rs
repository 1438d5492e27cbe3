//! route-inbound end to end: the WhatsApp simulator's users (and Meta-shaped signed posts for what
//! the simulator does not produce) reach `whatsapp-webhook` through the HTTP front, the queue
//! runner feeds `route-inbound`, and the tests read the Outbound queue (what the sender would
//! send), the flow queues, the DLQ and the tables.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use e2e::{APP_SECRET, TestEnv};
use serde_json::{Value, json};
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::{MessageFlow, OutboundRequest, RoutedMessage};
use shared::ports::{BusinessNumberId, ContactDirectory, ConversationStore};
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::ConnectorSecrets;
use whatsapp_sim::{SimConfig, Simulator};

const INTERNAL: &str = "109876543210987";
const UGC: &str = "109876543210988";

struct Router {
    env: TestEnv,
    sim: Simulator,
    pseudonyms: Pseudonymizer,
}

impl Router {
    async fn start() -> Self {
        let env = TestEnv::start().await;
        let mut config = SimConfig::new("sim-access-token", APP_SECRET);
        config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        config.phone_number_id = INTERNAL.into();
        let sim = Simulator::start(config).await.expect("simulator");
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

    fn directory(&self) -> DynamoContactDirectory {
        DynamoContactDirectory::new(self.dynamodb(), self.table("ContactsTable"))
    }

    fn conversations(&self) -> DynamoConversationStore {
        DynamoConversationStore::new(self.dynamodb(), self.table("ConversationsTable"))
    }

    async fn known(&self, phone: &str, roles: &[Role]) {
        let mut contact = Contact::new(self.user(phone));
        contact.address = Some(WhatsAppAddress::from_wa_id(phone).expect("phone"));
        contact.roles = roles.iter().copied().collect();
        self.directory().put(&contact).await.expect("put contact");
    }

    async fn contact(&self, phone: &str) -> Option<Contact> {
        self.directory()
            .get(&self.user(phone))
            .await
            .expect("get contact")
    }

    /// Waits for the simulator's webhooks, then lets route-inbound consume `inbound.fifo` with
    /// all its instances at once.
    async fn settle(&self) {
        self.sim.idle().await;
        let consumer = self
            .env
            .stack
            .consumer("InboundQueue")
            .expect("route-inbound consumes inbound.fifo");
        self.env
            .stack
            .runner
            .drain_concurrently(consumer, 20)
            .await
            .expect("drain inbound");
    }

    /// Signs and posts a Meta notification carrying `messages` to `number`.
    async fn post(&self, number: &str, messages: &[Value], statuses: &[Value]) {
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15551230000", "phone_number_id": number},
        });
        if !messages.is_empty() {
            value["messages"] = json!(messages);
        }
        if !statuses.is_empty() {
            value["statuses"] = json!(statuses);
        }
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "204060801234567", "changes": [{"field": "messages", "value": value}]}],
        });
        let status = self
            .env
            .meta()
            .deliver(body.to_string().as_bytes())
            .await
            .expect("post");
        assert_eq!(status, 200);
    }

    /// Takes every message off a queue (received and deleted: on a FIFO queue, a message in
    /// flight holds back the rest of its group).
    async fn take(&self, queue: &str) -> Vec<String> {
        let url = self
            .env
            .stack
            .resources
            .queue_url(queue)
            .expect("queue")
            .to_owned();
        let sqs = self.env.stack.sqs();
        let mut bodies = Vec::new();
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
                return bodies;
            }
            for message in batch {
                if let Some(handle) = &message.receipt_handle {
                    sqs.delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
                bodies.extend(message.body);
            }
        }
    }

    async fn outbound(&self) -> Vec<OutboundRequest> {
        self.take("OutboundQueue")
            .await
            .iter()
            .map(|b| serde_json::from_str(b).expect("an outbound request"))
            .collect()
    }

    async fn routed(&self, queue: &str) -> Vec<RoutedMessage> {
        self.take(queue)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).expect("a routed message"))
            .collect()
    }
}

fn keys(routed: &[RoutedMessage]) -> Vec<&str> {
    routed.iter().map(|r| r.key.as_str()).collect()
}

fn text_message(phone: &str, id: &str, timestamp: i64, body: &str) -> Value {
    json!({"from": phone, "id": id, "timestamp": timestamp.to_string(), "type": "text", "text": {"body": body}})
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn the_same_inbound_message_delivered_three_times_twice_concurrently_has_one_effect() {
    let router = Router::start().await;
    let phone = "447700900555";
    let message = text_message(phone, "wamid.DUP1", now_s(), "hello, who is this?");
    // Meta delivers the notification three times, two of them at once: the edge's FIFO
    // deduplication keeps one copy on inbound.fifo.
    let once = [message];
    router.post(INTERNAL, &once, &[]).await;
    tokio::join!(
        router.post(INTERNAL, &once, &[]),
        router.post(INTERNAL, &once, &[])
    );
    assert_eq!(router.env.queue_depth("InboundQueue").await, 1);

    // SQS redelivers the record too (a visibility timeout passed, a consumer died): the same
    // record reaches two function instances at once, then a third time.
    let url = router
        .env
        .stack
        .resources
        .queue_url("InboundQueue")
        .expect("queue")
        .to_owned();
    let received = router
        .env
        .stack
        .sqs()
        .receive_message()
        .queue_url(&url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .visibility_timeout(0)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let record = json!({
        "messageId": received[0].message_id,
        "receiptHandle": received[0].receipt_handle,
        "body": received[0].body,
        "attributes": received[0].attributes.clone().unwrap_or_default().iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": router.env.stack.resources.queue_arns["InboundQueue"],
        "awsRegion": "us-east-1",
    });
    let event = || serde_json::from_value(json!({"Records": [record.clone()]})).expect("event");
    let consumer = router.env.stack.consumer("InboundQueue").expect("consumer");
    assert!(consumer.instances.len() >= 2, "{consumer:?}");
    let (first, second) = tokio::join!(
        (consumer.instances[0])(event()),
        (consumer.instances[1])(event())
    );
    let failed = first.batch_item_failures.len() + second.batch_item_failures.len();
    assert_eq!(
        failed, 0,
        "both handle it; the second mark finds the item marked by the first"
    );
    let third = (consumer.instances[0])(event()).await;
    assert!(
        third.batch_item_failures.is_empty(),
        "a marked item is acknowledged"
    );
    // And the queue's own copy, as the event source mapping delivers it.
    router.settle().await;

    let outbound = router.outbound().await;
    assert_eq!(outbound.len(), 1, "one courtesy reply: {outbound:?}");
    assert_eq!(outbound[0].key.flow, MessageFlow::Conversation);
    assert_eq!(
        outbound[0].key.subject, "courtesy@109876543210987",
        "the key names the window on this number, not the message"
    );
    assert_eq!(outbound[0].to.expose(), "+447700900555");
    assert_eq!(keys(&router.routed("UnroutedQueue").await), ["wamid.DUP1"]);
    let conversation = router
        .conversations()
        .get(
            &router.user(phone),
            &BusinessNumberId::parse(INTERNAL).expect("id"),
        )
        .await
        .expect("conversation")
        .expect("recorded");
    assert!(conversation.courtesy_reply_at_ms.is_some());
    assert!(
        conversation.seen.contains("wamid.DUP1"),
        "the conversation lists the item as seen"
    );
    assert_eq!(conversation.seen.len(), 1);
    assert!(conversation.window_open(now_s() * 1000));
    assert_eq!(router.env.queue_depth("InboundDLQ").await, 0);
}

#[tokio::test]
async fn stop_with_punctuation_is_recorded_and_confirmed_once() {
    let router = Router::start().await;
    let phone = "447700900123";
    router.known(phone, &[Role::Approver]).await;
    let user = router.sim.user(phone);

    user.send_text("Stop.");
    router.settle().await;
    let opted_out = router.contact(phone).await.expect("entry");
    assert!(opted_out.is_opted_out(), "recorded");
    assert!(opted_out.has_role(Role::Approver), "the entry is kept");

    user.send_text(" stop! ");
    user.send_text("ARRÊT");
    router.settle().await;
    let confirmations = router.outbound().await;
    assert_eq!(confirmations.len(), 1, "confirmed once: {confirmations:?}");
    assert_eq!(confirmations[0].key.flow, MessageFlow::OptOut);
    assert_eq!(confirmations[0].key.subject, router.user(phone).as_str());
    assert_eq!(
        confirmations[0].key.version,
        opted_out.opted_out_at_ms.expect("time").to_string()
    );
    assert!(
        router.routed("UnroutedQueue").await.is_empty(),
        "commands are not routed"
    );

    user.send_text("START");
    router.settle().await;
    let back = router.contact(phone).await.expect("entry");
    assert!(!back.is_opted_out());
    assert_eq!(
        back.opted_in.map(|o| o.source),
        Some("whatsapp:START".to_owned())
    );
    let resumed = router.outbound().await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].key.flow, MessageFlow::Conversation);
}

#[tokio::test]
async fn each_kind_of_inbound_item_reaches_its_queue() {
    let router = Router::start().await;
    let field_rep = "447700900201";
    let regional = "447700900202";
    router.known(field_rep, &[Role::Field, Role::Rep]).await;
    router.known(regional, &[Role::Regional]).await;
    let user = router.sim.user(field_rep);

    let (photo, _) = user.send_media(
        shared::whatsapp::messages::MediaKind::Image,
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        Some("North pier"),
        None,
    );
    let request = user.send_text("send me the approved pier photo");
    let tap = user.tap_reply_button("wamid.OURS1", "rv|approve|A-1|3", "Approve");
    router.sim.idle().await;

    // A quote reply to a message the sender recorded, and one the simulator cannot make:
    // a type this connector does not know.
    router
        .dynamodb()
        .put_item()
        .table_name(router.table("SentMessagesTable"))
        .item("pk", AttributeValue::S("wamid.OURS2".into()))
        .item("flow", AttributeValue::S("cp".into()))
        .item("subject", AttributeValue::S("SUMMER26".into()))
        .item("version", AttributeValue::S("1".into()))
        .item(
            "recipient",
            AttributeValue::S(router.user(regional).as_str().into()),
        )
        .send()
        .await
        .expect("sent record");
    let mut quote = text_message(regional, "wamid.QUOTE1", now_s(), "need the square format");
    quote["context"] = json!({"from": "15551230000", "id": "wamid.OURS2"});
    let hologram = json!({"from": regional, "id": "wamid.HOLO1", "timestamp": now_s().to_string(),
        "type": "hologram", "hologram": {"depth": 3}});
    let status = json!({"id": "wamid.OURS2", "status": "read", "timestamp": now_s().to_string(),
        "recipient_id": regional});
    router.post(INTERNAL, &[quote, hologram], &[status]).await;
    // Anything on the UGC number, from anyone.
    router
        .post(
            UGC,
            &[text_message(
                "447700900999",
                "wamid.UGC1",
                now_s(),
                "my #SUMMER26 entry",
            )],
            &[],
        )
        .await;
    router.settle().await;

    assert_eq!(
        keys(&router.routed("FieldIngestQueue").await),
        [photo.as_str()]
    );
    assert_eq!(
        keys(&router.routed("SharingQueue").await),
        [request.as_str()]
    );
    assert_eq!(keys(&router.routed("UgcIntakeQueue").await), ["wamid.UGC1"]);
    // Each answer goes to the queue of the flow that sent the message it answers.
    let campaign = router.routed("CampaignQueue").await;
    assert_eq!(keys(&campaign), ["wamid.QUOTE1"]);
    let review = router.routed("ReviewQueue").await;
    assert_eq!(keys(&review), [tap.as_str()]);
    let answered: Vec<_> = campaign
        .iter()
        .chain(&review)
        .map(|r| r.answers.as_ref().map(|k| (k.flow, k.subject.clone())))
        .collect();
    assert_eq!(
        answered,
        [
            Some((MessageFlow::Campaign, "SUMMER26".to_owned())),
            Some((MessageFlow::Review, "A-1".to_owned()))
        ]
    );
    let unrouted = router.routed("UnroutedQueue").await;
    assert_eq!(keys(&unrouted), ["wamid.HOLO1"], "an unknown type is kept");
    let kept: Value = serde_json::from_str(unrouted[0].item.get()).expect("raw");
    assert_eq!(kept["hologram"]["depth"], 3, "kept exactly as Meta sent it");
    let statuses = router.env.receive_all("DeliveryStatusQueue").await;
    assert_eq!(statuses.len(), 1);
    let status: shared::domain::inbound::InboundItem =
        serde_json::from_str(&statuses[0]).expect("the inbound item itself");
    assert_eq!(status.key, "wamid.OURS2:read");
    assert!(
        router.outbound().await.is_empty(),
        "known senders get no courtesy reply"
    );
    assert_eq!(router.env.queue_depth("InboundDLQ").await, 0);
}

#[tokio::test]
async fn an_unknown_sender_gets_one_courtesy_reply_per_window_never_a_loop() {
    let router = Router::start().await;
    let phone = "447700900777";
    let t = now_s();
    router
        .post(INTERNAL, &[text_message(phone, "wamid.C1", t, "hi")], &[])
        .await;
    // A bot answering our reply, twice.
    router
        .post(
            INTERNAL,
            &[
                text_message(phone, "wamid.C2", t + 5, "Thank you for your message"),
                text_message(phone, "wamid.C3", t + 10, "Thank you for your message"),
            ],
            &[],
        )
        .await;
    router.settle().await;
    let first = router.outbound().await;
    assert_eq!(first.len(), 1);
    let first_version = first[0].key.version.clone();

    // A message 25 hours later opens a new window: one more reply.
    router
        .post(
            INTERNAL,
            &[text_message(
                phone,
                "wamid.C4",
                t + 25 * 3600,
                "hello again",
            )],
            &[],
        )
        .await;
    router.settle().await;
    let second = router.outbound().await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].key.subject, "courtesy@109876543210987");
    assert_ne!(
        second[0].key.version, first_version,
        "the next window's reply is a send of its own"
    );
    let mut kept = router.routed("UnroutedQueue").await;
    kept.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        keys(&kept),
        ["wamid.C1", "wamid.C2", "wamid.C3", "wamid.C4"],
        "every message is kept"
    );
}

#[tokio::test]
async fn a_number_change_moves_the_directory_entry() {
    let router = Router::start().await;
    let old = "447700900301";
    let new = "447700900302";
    router.known(old, &[Role::Field]).await;
    let change = json!({"from": old, "id": "wamid.SYS1", "timestamp": now_s().to_string(),
        "type": "system", "system": {"body": "User A changed from 447700900301 to 447700900302",
        "wa_id": new, "type": "user_changed_number"}});
    router.post(INTERNAL, &[change], &[]).await;
    router.settle().await;

    assert!(router.contact(old).await.is_none(), "the old entry is gone");
    let moved = router.contact(new).await.expect("moved");
    assert!(moved.has_role(Role::Field));
    assert_eq!(
        moved.address.map(|a| a.expose().to_owned()),
        Some("+447700900302".to_owned())
    );
    let field = router
        .directory()
        .with_role(Role::Field)
        .await
        .expect("with role");
    assert_eq!(field.len(), 1);
    assert_eq!(field[0].pseudonym, router.user(new));
}

#[tokio::test]
async fn a_malformed_item_is_dead_lettered_with_its_reason_not_retried() {
    let router = Router::start().await;
    let url = router
        .env
        .stack
        .resources
        .queue_url("InboundQueue")
        .expect("queue")
        .to_owned();
    router
        .env
        .stack
        .sqs()
        .send_message()
        .queue_url(&url)
        .message_body(r#"{"v":1,"kind":"message","key":"wamid.BROKEN"}"#)
        .message_group_id("business-109876543210987")
        .message_deduplication_id("broken-1")
        .send()
        .await
        .expect("send");
    router.settle().await;

    assert_eq!(
        router.env.queue_depth("InboundQueue").await,
        0,
        "acknowledged"
    );
    let dlq = router
        .env
        .stack
        .resources
        .queue_url("InboundDLQ")
        .expect("dlq")
        .to_owned();
    let dead = router
        .env
        .stack
        .sqs()
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes.clone().unwrap_or_default();
    let reason = attributes["failure_reason"]
        .string_value()
        .unwrap_or_default();
    assert!(reason.contains("not an inbound item"), "{reason}");
    assert_eq!(
        attributes["receive_count"].string_value(),
        Some("1"),
        "moved on its first receive, not retried"
    );
}

#[tokio::test]
async fn the_routers_log_holds_no_number_or_message_text() {
    const SENDER: &str = "447700900466";
    const NEW_NUMBER: &str = "447700900467";
    const TEXT: &str = "Gate code 7731, ask for Marguerite";
    const TITLE: &str = "Approve for Marguerite";
    let router = Router::start().await;
    router.known(SENDER, &[Role::Field]).await;
    let user = router.sim.user(SENDER);
    user.send_text(TEXT);
    user.tap_reply_button("wamid.OURS9", "rv|approve|A-9|1", TITLE);
    user.send_text("Stop.");
    router.sim.idle().await;
    let t = now_s();
    router
        .post(
            INTERNAL,
            &[
                json!({"from": SENDER, "id": "wamid.HYG1", "timestamp": t.to_string(),
                    "type": "hologram", "hologram": {"note": TEXT}}),
                json!({"from": SENDER, "id": "wamid.HYG2", "timestamp": (t + 1).to_string(),
                    "type": "system", "system": {"body": format!("User A changed from {SENDER} to {NEW_NUMBER}"),
                    "wa_id": NEW_NUMBER, "type": "user_changed_number"}}),
            ],
            &[],
        )
        .await;
    router
        .post(
            UGC,
            &[text_message("447700900468", "wamid.HYG3", t, TEXT)],
            &[],
        )
        .await;
    router.settle().await;
    assert!(
        router.contact(NEW_NUMBER).await.is_some(),
        "the run went through"
    );

    let log = e2e::logs::captured();
    assert!(log.contains("route_inbound"), "the router logged");
    for needle in [SENDER, NEW_NUMBER, "447700900468", TEXT, TITLE, "Gate code"] {
        let at = log.find(needle);
        assert!(
            at.is_none(),
            "the log holds {needle:?}: …{}…",
            at.map(|i| &log[i.saturating_sub(160)..(i + needle.len() + 40).min(log.len())])
                .unwrap_or_default()
        );
    }
}
