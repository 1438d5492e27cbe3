//! The conversation core end to end, with nothing standing in: a user's phone (the WhatsApp
//! simulator) → the webhook edge → route-inbound → outbound.fifo → the one sender → the phone, and
//! the statuses back through track-delivery; every consumer polling in the background with
//! several instances, as Lambda's event source mappings do.

use e2e::{APP_SECRET, TestEnv};
use shared::adapters::directory::DynamoContactDirectory;
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::connector_config::Purpose;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::domain::outbound::{MessageFlow, OUTBOUND_VERSION, OutboundRequest, SendFrom, SendKey};
use shared::ports::{ContactDirectory, OutboundQueue};
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::Secret;
use shared::whatsapp::messages::Content;
use std::time::Duration;
use whatsapp_sim::{SimConfig, Simulator};

const PSEUDONYM_KEY: &str = "local-pseudonym-key-0123456789abcdef0123";

struct Live {
    env: TestEnv,
    sim: Simulator,
}

impl Live {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let env = TestEnv::start_with(|o| {
            o.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
            o.run_queues = true;
        })
        .await;
        let mut config = SimConfig::new("local-graph-token", APP_SECRET);
        config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        let sim = Simulator::start(config).await.expect("simulator");
        Self { env, sim }
    }

    fn pseudonym(digits: &str) -> UserPseudonym {
        Pseudonymizer::new(&Secret::new(PSEUDONYM_KEY)).pseudonym(digits)
    }

    /// `(direction, summary)` of each line on the phone of `digits`.
    fn phone(&self, digits: &str) -> Vec<(String, String)> {
        self.sim
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(digits))
            .flat_map(|u| u.lines)
            .map(|l| (l.direction.to_owned(), l.summary))
            .collect()
    }

    fn outgoing(&self, digits: &str) -> Vec<String> {
        self.phone(digits)
            .into_iter()
            .filter(|(d, _)| d == "out")
            .map(|(_, s)| s)
            .collect()
    }

    /// Waits until the phone of `digits` shows `n` outgoing lines, then a little longer so a
    /// message that should not come has had the time to.
    async fn until_outgoing(&self, digits: &str, n: usize) -> Vec<String> {
        for _ in 0..300 {
            if self.outgoing(digits).len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.outgoing(digits)
    }

    async fn send_review(&self, digits: &str, version: &str) {
        let queue = SqsOutboundQueue(SqsJsonQueue::new(
            self.env.stack.sqs(),
            self.env
                .stack
                .resources
                .queue_url("OutboundQueue")
                .expect("queue"),
        ));
        let request = OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::Review,
                subject: "A-1042".into(),
                version: version.into(),
                recipient: Self::pseudonym(digits),
            },
            to: WhatsAppAddress::parse(digits).expect("number"),
            from: SendFrom::Purpose(Purpose::Notifications),
            content: Some(Content::Text {
                body: format!("Please review North pier v{version}"),
                preview_url: false,
            }),
            template: None,
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: 1,
        };
        queue.enqueue(&[request]).await.expect("queued");
    }
}

#[tokio::test]
async fn stop_is_confirmed_once_on_the_phone_and_no_flow_message_reaches_it_until_start() {
    let live = Live::start().await;
    let maria = "447700900123";
    let directory = DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&live.env.stack.aws),
        live.env.stack.resources.tables["ContactsTable"].clone(),
    );
    let mut contact = Contact::new(Live::pseudonym(maria));
    contact.address = Some(WhatsAppAddress::parse(maria).expect("number"));
    contact.roles = [Role::Approver].into_iter().collect();
    directory.put(&contact).await.expect("directory");

    let phone = live.sim.user(maria);
    phone.send_text("Stop.");
    phone.send_text("stop!");
    let seen = live.until_outgoing(maria, 1).await;
    assert_eq!(seen.len(), 1, "one confirmation for two STOPs: {seen:?}");
    assert!(
        seen[0].contains("START"),
        "the confirmation says how to come back"
    );

    live.send_review(maria, "1").await;
    let seen = live.until_outgoing(maria, 2).await;
    assert_eq!(
        seen.len(),
        1,
        "the review request never reached her phone: {seen:?}"
    );

    phone.send_text("START");
    // Requests queued before the START is handled are suppressed too: wait for its confirmation.
    let seen = live.until_outgoing(maria, 2).await;
    assert!(seen[1].contains("STOP"), "START is confirmed: {seen:?}");
    live.send_review(maria, "2").await;
    let seen = live.until_outgoing(maria, 3).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].contains("North pier v2"), "sends resumed: {seen:?}");
    assert!(
        !seen.iter().any(|s| s.contains("v1")),
        "the request suppressed during the opt-out stays suppressed"
    );
    assert_eq!(live.env.queue_depth("OutboundDLQ").await, 0);
    assert_eq!(live.env.queue_depth("InboundDLQ").await, 0);
}

#[tokio::test]
async fn an_unknown_sender_writing_twice_in_one_second_gets_one_courtesy_reply_on_the_phone() {
    let live = Live::start().await;
    let stranger = live.sim.user("447700900999");
    stranger.send_text("hi, who is this?");
    stranger.send_text("hello??");
    let seen = live.until_outgoing("447700900999", 2).await;
    assert_eq!(seen.len(), 1, "one polite reply, never a loop: {seen:?}");
}
