//! `send-whatsapp-message`: consumes `outbound.fifo` (partial batch responses) and hands each
//! request to the one sender's flow. Records of one recipient (one FIFO group) run in order.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::sending::{DynamoSendLedger, DynamoSendPacer, DynamoSentMessages};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::outbound::{OUTBOUND_VERSION, OutboundRequest};
use shared::error::Retryable;
use shared::flows::send_message::{SendFlowError, SendSettings, Sender};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{
    ContactDirectory, ConversationStore, MessageSender, SendLedger, SendPacer, SentMessageStore,
};
use shared::secrets::{SecretsError, SecretsLocation};
use shared::whatsapp::client::{GraphApiConfig, WhatsAppClient};
use shared::whatsapp::errors::ApiError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The contact directory.
    pub contacts_table: String,
    /// Conversation state (the 24-hour windows).
    pub conversations_table: String,
    /// Send-key claims and outcomes.
    pub sends_table: String,
    /// wamid → what was sent.
    pub sent_messages_table: String,
    /// Pacing buckets.
    pub send_rate_table: String,
    /// The dead-letter queue of `outbound.fifo`.
    pub dead_letter_queue_url: String,
    /// Graph's host and version (`WHATSAPP_GRAPH_BASE_URL`, `WHATSAPP_GRAPH_VERSION`) and the
    /// whole-request timeout (`WHATSAPP_GRAPH_TIMEOUT_MS`).
    pub graph: GraphApiConfig,
    /// Pacing, retries and the unknown-outcome wait.
    pub settings: SendSettings,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads the environment, reporting every missing variable at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let contacts_table = env.required("CONTACTS_TABLE");
        let conversations_table = env.required("CONVERSATIONS_TABLE");
        let sends_table = env.required("SENDS_TABLE");
        let sent_messages_table = env.required("SENT_MESSAGES_TABLE");
        let send_rate_table = env.required("SEND_RATE_TABLE");
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let mut graph = GraphApiConfig::meta(String::new());
        if let Some(base_url) = env.optional("WHATSAPP_GRAPH_BASE_URL") {
            graph.base_url = base_url.trim_end_matches('/').to_owned();
        }
        if let Some(version) = env.optional("WHATSAPP_GRAPH_VERSION") {
            graph.version = version;
        }
        graph.timeout = Duration::from_millis(env.parsed_or("WHATSAPP_GRAPH_TIMEOUT_MS", 10_000));
        let defaults = SendSettings::default();
        let settings = SendSettings {
            per_number_per_second: env.parsed_or("SEND_RATE_PER_SECOND", 80),
            pair_burst: env.parsed_or("PAIR_BURST", defaults.pair_burst),
            pair_interval: Duration::from_millis(env.parsed_or("PAIR_INTERVAL_MS", 6_000)),
            resend_unknown_after: Duration::from_secs(
                env.parsed_or("RESEND_UNKNOWN_AFTER_SECONDS", 300),
            ),
            send_worst_case: graph.timeout + Duration::from_millis(500),
            max_retry_wait: defaults.max_retry_wait,
        };
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            contacts_table,
            conversations_table,
            sends_table,
            sent_messages_table,
            send_rate_table,
            dead_letter_queue_url,
            graph,
            settings,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<
    D = DynamoContactDirectory,
    C = DynamoConversationStore,
    L = DynamoSendLedger,
    M = DynamoSentMessages,
    P = DynamoSendPacer,
    G = WhatsAppClient,
> = Sender<D, C, L, M, P, G>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("send-whatsapp-message cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("send-whatsapp-message cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// No Graph token.
    #[error("send-whatsapp-message needs `whatsapp_access_token` in the connector secrets")]
    NoAccessToken,
    /// The HTTP client could not be built.
    #[error("send-whatsapp-message cannot build the Graph client")]
    Client(#[from] ApiError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let token = secrets
        .whatsapp_access_token
        .filter(|t| !t.expose().is_empty())
        .ok_or(StartError::NoAccessToken)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    Ok(Sender {
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        conversations: DynamoConversationStore::new(dynamodb.clone(), &config.conversations_table),
        ledger: DynamoSendLedger::new(dynamodb.clone(), &config.sends_table),
        messages: DynamoSentMessages::new(dynamodb.clone(), &config.sent_messages_table),
        pacer: DynamoSendPacer::new(dynamodb, &config.send_rate_table),
        graph: WhatsAppClient::new(config.graph.clone(), token)?,
        numbers: connector.whatsapp.business_numbers,
        templates: connector.whatsapp.templates,
        settings: config.settings.clone(),
        token_refused: AtomicBool::new(false),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The sender.
    pub sender: Deps,
    /// The dead-letter queue and the source queue of `outbound.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "send-whatsapp-message";
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let sender = connect(&config, aws).await?;
        let records = SqsRecordQueues::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dead_letter_queue_url,
            Self::NAME,
        );
        Ok(Self { sender, records })
    }

    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, std::convert::Infallible> {
        Ok(handle_batch(&self.sender, &self.records, event, deadline).await)
    }
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not an outbound request of a version this code reads: it never will be.
    #[error("the record is not an outbound request")]
    Malformed(#[source] Option<serde_json::Error>),
    /// The send has to come back later.
    #[error(transparent)]
    Send(#[from] SendFlowError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Send(e) => e.is_retryable(),
        }
    }
}

fn unix_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Handles an `outbound.fifo` batch before `deadline`; only what must come back is reported.
pub async fn handle_batch<D, C, L, M, P, G, Q>(
    sender: &Deps<D, C, L, M, P, G>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    D: ContactDirectory,
    C: ConversationStore,
    L: SendLedger,
    M: SentMessageStore,
    P: SendPacer,
    G: MessageSender,
    Q: RecordQueues,
{
    // A refused token stops this batch only: the next invocation tries again (it may be renewed).
    sender.token_refused.store(false, Ordering::SeqCst);
    let policy = BatchPolicy {
        record_worst_case: sender.settings.send_worst_case + Duration::from_secs(1),
        ..BatchPolicy::default()
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let deadline_ms = unix_ms() + i64::try_from(left.as_millis()).unwrap_or(0);
    process_records(event, deadline, &policy, records, |record| {
        handle_record(sender, record, deadline_ms)
    })
    .await
}

async fn handle_record<D, C, L, M, P, G>(
    sender: &Deps<D, C, L, M, P, G>,
    record: SqsMessage,
    deadline_ms: i64,
) -> Result<(), RecordError>
where
    D: ContactDirectory,
    C: ConversationStore,
    L: SendLedger,
    M: SentMessageStore,
    P: SendPacer,
    G: MessageSender,
{
    let request: OutboundRequest = serde_json::from_str(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Malformed(Some(e)))?;
    if request.v != OUTBOUND_VERSION {
        return Err(RecordError::Malformed(None));
    }
    sender.send(&request, unix_ms(), deadline_ms).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryMessageSender, InMemoryPacer,
        InMemoryRecordQueues, InMemorySendLedger, InMemorySentMessageStore,
    };

    type TestDeps = Deps<
        InMemoryContactDirectory,
        InMemoryConversationStore,
        InMemorySendLedger,
        InMemorySentMessageStore,
        InMemoryPacer,
        InMemoryMessageSender,
    >;

    fn deps() -> TestDeps {
        let config = shared::connector_config::ConnectorConfig::parse(include_str!(
            "../../../local/connector.yaml"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        Sender {
            directory: InMemoryContactDirectory::default(),
            conversations: InMemoryConversationStore::default(),
            ledger: InMemorySendLedger::default(),
            messages: InMemorySentMessageStore::default(),
            pacer: InMemoryPacer::default(),
            graph: InMemoryMessageSender::default(),
            numbers: config.whatsapp.business_numbers,
            templates: config.whatsapp.templates,
            settings: SendSettings::default(),
            token_refused: AtomicBool::new(false),
        }
    }

    fn event(json: &str) -> SqsEvent {
        serde_json::from_str(json).expect("event file")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_batch_sends_its_template_request_once_and_dead_letters_the_malformed_record() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!(
                "../../../events/send-whatsapp-message/outbound-batch.json"
            )),
            far(),
        )
        .await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        let sent = deps.graph.sent();
        assert_eq!(sent.len(), 1, "the redelivered copy is not sent again");
        assert!(sent[0].1.content.is_template());
        assert_eq!(sent[0].0.as_str(), "109876543210987");
        let dead = records.dead_letters();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert!(dead[0].1.contains("not an outbound request"), "{dead:?}");
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "CONTACTS_TABLE",
            "CONVERSATIONS_TABLE",
            "SENDS_TABLE",
            "SENT_MESSAGES_TABLE",
            "SEND_RATE_TABLE",
            "DEAD_LETTER_QUEUE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
