//! The sender's test bench: a local stack whose sender talks to a WhatsApp simulator whose
//! webhooks come back through the real webhook function, and a stand-in router of the tests' own
//! that moves status items from the inbound queue to `DeliveryStatus`.

use aws_sdk_sqs::types::QueueAttributeName;
use e2e::{APP_SECRET, TestEnv};
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::sending::{DynamoSendLedger, DynamoSentMessages};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::connector_config::{Purpose, TemplateUse};
use shared::domain::contact::WhatsAppAddress;
use shared::domain::inbound::{InboundItem, InboundKind};
use shared::domain::outbound::{
    MessageFlow, OUTBOUND_VERSION, OutboundRequest, SendFrom, SendKey, TemplateMessage,
};
use shared::ports::{BusinessNumberId, ConversationStore, OutboundQueue};
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::Secret;
use shared::whatsapp::messages::{Content, TemplateParam};
use std::collections::BTreeMap;
use std::time::Duration;
use whatsapp_sim::{SimConfig, Simulator, TemplateDef};

/// The token of `local/secrets.json`, which the simulator accepts.
pub const TOKEN: &str = "local-graph-token";
/// The notifications / field number of `local/connector.yaml` (the simulator's).
pub const NUMBER: &str = "109876543210987";

/// A stack and the simulator its sender talks to.
#[derive(Debug)]
pub struct SendBench {
    /// The stack.
    pub env: TestEnv,
    /// The simulator.
    pub sim: Simulator,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Starts a bench; `overrides` are the sender's variables, `configure` the simulator's settings.
pub async fn bench(
    overrides: &[(&str, &str)],
    configure: impl FnOnce(&mut SimConfig),
) -> SendBench {
    bench_on(false, overrides, configure).await
}

/// [`bench`] on a moto of its own (the load tests).
pub async fn bench_alone(
    overrides: &[(&str, &str)],
    configure: impl FnOnce(&mut SimConfig),
) -> SendBench {
    bench_on(true, overrides, configure).await
}

async fn bench_on(
    alone: bool,
    overrides: &[(&str, &str)],
    configure: impl FnOnce(&mut SimConfig),
) -> SendBench {
    let port = free_port();
    let overrides: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let configure_stack = |options: &mut local::stack::Options| {
        options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
        options.env_overrides = overrides;
    };
    let env = if alone {
        TestEnv::start_alone(configure_stack).await
    } else {
        TestEnv::start_with(configure_stack).await
    };
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
    config.status_delay = Duration::from_millis(5);
    config
        .templates
        .push(TemplateDef::positional("content_receipt", "en_US", 1));
    config
        .templates
        .push(TemplateDef::positional("content_receipt", "fr_FR", 1));
    configure(&mut config);
    let sim = Simulator::start(config).await.expect("simulator");
    SendBench { env, sim }
}

/// The pseudonym of a test user.
pub fn pseudonym(digits: &str) -> UserPseudonym {
    Pseudonymizer::new(&Secret::new("sender-tests")).pseudonym(digits)
}

/// A free-form text to `digits` with the receipt template as its out-of-window version.
pub fn text_request(digits: &str, subject: &str, body: &str) -> OutboundRequest {
    OutboundRequest {
        v: OUTBOUND_VERSION,
        key: SendKey {
            flow: MessageFlow::FieldIngest,
            subject: subject.to_owned(),
            version: "1".into(),
            recipient: pseudonym(digits),
        },
        to: WhatsAppAddress::parse(&format!("+{digits}")).expect("number"),
        from: SendFrom::Purpose(Purpose::FieldIngest),
        content: Some(Content::Text {
            body: body.to_owned(),
            preview_url: false,
        }),
        template: Some(TemplateMessage {
            template: TemplateUse::Receipt,
            header: None,
            body: vec![TemplateParam::text("3")],
            buttons: Vec::new(),
        }),
        reply_to: None,
        actor: Some("system".into()),
        requested_at_ms: 1,
    }
}

impl SendBench {
    fn table(&self, logical_id: &str) -> String {
        self.env
            .stack
            .resources
            .tables
            .get(logical_id)
            .cloned()
            .unwrap_or_else(|| panic!("no table {logical_id}"))
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.env.stack.aws)
    }

    /// The sends table.
    pub fn ledger(&self) -> DynamoSendLedger {
        DynamoSendLedger::new(self.dynamodb(), self.table("SendsTable"))
    }

    /// The sent-messages table.
    pub fn sent_messages(&self) -> DynamoSentMessages {
        DynamoSentMessages::new(self.dynamodb(), self.table("SentMessagesTable"))
    }

    /// The contact directory.
    pub fn directory(&self) -> DynamoContactDirectory {
        DynamoContactDirectory::new(self.dynamodb(), self.table("ContactsTable"))
    }

    /// Opens the 24-hour window of `digits` on both sides: the connector's conversation state
    /// and the simulator's user.
    pub async fn open_window(&self, digits: &str) {
        let conversations =
            DynamoConversationStore::new(self.dynamodb(), self.table("ConversationsTable"));
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        conversations
            .record_inbound(
                &pseudonym(digits),
                &BusinessNumberId::parse(NUMBER).expect("digits"),
                now - 60_000,
            )
            .await
            .expect("window recorded");
        self.sim
            .user(digits)
            .last_wrote(Some(Duration::from_secs(60)));
    }

    /// Puts requests on `outbound.fifo`.
    pub async fn enqueue(&self, requests: &[OutboundRequest]) {
        let url = self
            .env
            .stack
            .resources
            .queue_url("OutboundQueue")
            .expect("outbound queue")
            .to_owned();
        // Sized for a test on a busy machine, not for the edges' 6-second budget.
        // One call at a time: concurrent SendMessageBatch calls would put one recipient's
        // requests on the FIFO queue out of order.
        let limits = shared::adapters::sqs::SendLimits {
            in_flight: 1,
            call_timeout: Duration::from_secs(30),
            budget_without_deadline: Duration::from_secs(120),
            ..shared::adapters::sqs::SendLimits::default()
        };
        let queue =
            SqsOutboundQueue(SqsJsonQueue::new(self.env.stack.sqs(), url).with_limits(limits));
        // In slices: one moto on two cores answers a thousand sends at once too slowly.
        for slice in requests.chunks(50) {
            queue.enqueue(slice).await.expect("enqueued");
        }
    }

    /// Polls the sender once; the message ids it reported failed.
    pub async fn send_once(&self) -> Vec<String> {
        let consumer = self
            .env
            .stack
            .consumer("OutboundQueue")
            .expect("the sender consumes outbound");
        self.env
            .stack
            .runner
            .poll_once(consumer, 0)
            .await
            .expect("poll")
            .failed
    }

    /// Polls the sender with every instance the template allows at once (its
    /// `MaximumConcurrency`), until the queue holds nothing.
    pub async fn drain_outbound(&self) {
        let consumer = self
            .env
            .stack
            .consumer("OutboundQueue")
            .expect("the sender consumes outbound");
        self.env
            .stack
            .runner
            .drain_concurrently(consumer, 2_000)
            .await
            .unwrap_or_else(|e| {
                let logs = e2e::logs::captured();
                let warnings: Vec<&str> = logs
                    .lines()
                    .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
                    .collect();
                let tail = &warnings[warnings.len().saturating_sub(20)..];
                panic!("drained: {e:#}\nlast warnings:\n{}", tail.join("\n"))
            });
    }

    /// The stand-in router: moves every status item on the inbound queue to `DeliveryStatus`,
    /// then lets track-delivery apply them. Returns how many statuses moved.
    pub async fn track_statuses(&self) -> usize {
        self.sim.idle().await;
        let sqs = self.env.stack.sqs();
        let resources = &self.env.stack.resources;
        let inbound = resources
            .queue_url("InboundQueue")
            .expect("inbound")
            .to_owned();
        let statuses = resources
            .queue_url("DeliveryStatusQueue")
            .expect("delivery status")
            .to_owned();
        let mut moved = 0;
        loop {
            let batch = sqs
                .receive_message()
                .queue_url(&inbound)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for message in batch {
                let body = message.body.clone().unwrap_or_default();
                let item: InboundItem = serde_json::from_str(&body).expect("an inbound item");
                if item.kind == InboundKind::Status {
                    sqs.send_message()
                        .queue_url(&statuses)
                        .message_body(&body)
                        .message_group_id(item.group_id())
                        .message_deduplication_id(item.deduplication_id())
                        .send()
                        .await
                        .expect("forwarded");
                    moved += 1;
                }
                sqs.delete_message()
                    .queue_url(&inbound)
                    .set_receipt_handle(message.receipt_handle)
                    .send()
                    .await
                    .expect("deleted");
            }
        }
        let tracker = self
            .env
            .stack
            .consumer("DeliveryStatusQueue")
            .expect("track-delivery consumes statuses");
        self.env
            .stack
            .runner
            .drain(tracker, 100)
            .await
            .expect("tracked");
        moved
    }

    /// Messages on a dead-letter queue.
    pub async fn dead_letters(&self, dlq: &str) -> usize {
        let url = self
            .env
            .stack
            .resources
            .queue_url(dlq)
            .expect("dlq")
            .to_owned();
        self.env
            .stack
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The outbound lines of the simulator's user `digits`: (type, summary), in order.
    pub fn outbound_lines(&self, digits: &str) -> Vec<(String, String)> {
        self.sim
            .users()
            .into_iter()
            .filter(|u| u.wa_id.as_deref() == Some(digits))
            .flat_map(|u| u.lines)
            .filter(|l| l.direction == "out")
            .map(|l| (l.kind, l.summary))
            .collect()
    }
}
