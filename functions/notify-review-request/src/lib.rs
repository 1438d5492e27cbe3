//! `notify-review-request`: consumes `review.fifo` (SQS, partial batch responses): "ready for
//! review" events become review requests to each approver, Approve / Reject answers are decided
//! once and written back to the DAM, "approved in the DAM" closes the request; and the scheduled
//! reminder (`{"remind":"due"}`) reminds approvers once before the deadline. The flow is
//! `shared::flows::review_request`; docs/review.md tells the whole story.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::reviews::DynamoReviewStore;
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::review_request::{ReviewError, ReviewFlow, ReviewSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{
    ContactDirectory, ConversationStore, IdempotencyStore, OutboundQueue, ReviewStore,
};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Review requests and their decisions.
    pub reviews_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// Conversation state (an approver asked for a reason).
    pub conversations_table: String,
    /// Per-asset comment leases, shared with the other DAM comment writers.
    pub comment_leases_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `review.fifo`.
    pub dead_letter_queue_url: String,
    /// The DAM.
    pub orange_logic: OrangeLogicLocation,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads the environment, reporting every missing variable at once.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any variable source.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let reviews_table = env.required("REVIEWS_TABLE");
        let contacts_table = env.required("CONTACTS_TABLE");
        let conversations_table = env.required("CONVERSATIONS_TABLE");
        let comment_leases_table = env.required("COMMENT_LEASES_TABLE");
        let outbound_queue_url = env.required("OUTBOUND_QUEUE_URL");
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let orange_logic = OrangeLogicLocation::from_env(&mut env);
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            reviews_table,
            contacts_table,
            conversations_table,
            comment_leases_table,
            outbound_queue_url,
            dead_letter_queue_url,
            orange_logic,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<
    R = DynamoReviewStore,
    D = DynamoContactDirectory,
    C = DynamoConversationStore,
    O = SqsOutboundQueue,
    L = DynamoIdempotencyStore,
> = ReviewFlow<R, D, C, O, L>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("notify-review-request cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("notify-review-request cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// The Orange Logic client could not be made.
    #[error("notify-review-request cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let dam = connect::client(&config.orange_logic, &secrets, &connector)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(ReviewFlow {
        reviews: DynamoReviewStore::new(dynamodb.clone(), &config.reviews_table),
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        conversations: DynamoConversationStore::new(dynamodb.clone(), &config.conversations_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs, &config.outbound_queue_url)),
        leases: DynamoIdempotencyStore::new(dynamodb, &config.comment_leases_table),
        dam,
        pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        settings: ReviewSettings::from_config(&connector),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `review.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "notify-review-request";
    type Event = serde_json::Value;
    type Response = serde_json::Value;
    type Error = HandleError;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let flow = connect(&config, aws).await?;
        let records = SqsRecordQueues::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dead_letter_queue_url,
            Self::NAME,
        );
        Ok(Self { flow, records })
    }

    async fn handle(
        &self,
        payload: serde_json::Value,
        deadline: Instant,
    ) -> Result<serde_json::Value, HandleError> {
        handle(&self.flow, &self.records, payload, deadline).await
    }
}

/// The reminder schedule's input (`Input` of the ScheduleV2 event in template.yaml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindRequest {
    /// Always `due`.
    pub remind: RemindKind,
}

/// Which reminders.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemindKind {
    /// Open requests whose deadline is within the reminder lead.
    Due,
}

/// An invocation that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Neither an SQS batch nor a reminder request.
    #[error("the invocation is neither an SQS batch nor a reminder request")]
    UnknownInvocation(#[source] serde_json::Error),
    /// The reminder run failed; the next schedule covers the same ground.
    #[error("the review reminders failed")]
    Remind(#[from] ReviewError),
    /// The answer could not be encoded.
    #[error("cannot encode the answer")]
    Encode(#[source] serde_json::Error),
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is neither a domain event nor an answer: it will never be.
    #[error("the record is neither a domain event nor an answer")]
    Malformed(#[source] serde_json::Error),
    /// The flow failed.
    #[error(transparent)]
    Review(#[from] ReviewError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Review(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: a few DAM calls (read, link, status, comment with its check),
/// a comment lease that may have to wait, and the queue sends.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(40);

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Dispatches an invocation: an SQS batch (answered with the failed ids) or the reminder schedule
/// (answered with how many requests were reminded).
pub async fn handle<R, D, C, O, L, Q>(
    flow: &Deps<R, D, C, O, L>,
    records: &Q,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, HandleError>
where
    R: ReviewStore,
    D: ContactDirectory,
    C: ConversationStore,
    O: OutboundQueue,
    L: IdempotencyStore,
    Q: RecordQueues,
{
    if payload.get("Records").is_some() {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
        let policy = BatchPolicy {
            record_worst_case: RECORD_WORST_CASE,
            ..BatchPolicy::default()
        };
        let response = process_records(event, deadline, &policy, records, |record| {
            handle_record(flow, record)
        })
        .await;
        return serde_json::to_value(response).map_err(HandleError::Encode);
    }
    let _: RemindRequest =
        serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
    let reminded = flow.remind(now_ms()).await.inspect_err(|error| {
        tracing::error!(error = %shared::error::chain(error), "review reminders failed");
    })?;
    Ok(serde_json::json!({ "reminded": reminded }))
}

async fn handle_record<R, D, C, O, L>(
    flow: &Deps<R, D, C, O, L>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    R: ReviewStore,
    D: ContactDirectory,
    C: ConversationStore,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let handled = flow.handle(&message, now_ms()).await?;
    tracing::info!(outcome = ?handled, "review queue message handled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::adapters::orange_logic::{Auth, OrangeLogicClient, Settings};
    use shared::connector_config::ConnectorConfig;
    use shared::secrets::Secret;
    use shared::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryIdempotencyStore,
        InMemoryOutboundQueue, InMemoryRecordQueues, InMemoryReviewStore,
    };
    use std::sync::Arc;

    type TestDeps = Deps<
        InMemoryReviewStore,
        InMemoryContactDirectory,
        InMemoryConversationStore,
        InMemoryOutboundQueue,
        InMemoryIdempotencyStore,
    >;

    /// The flow on fakes; the DAM is a port nothing listens on (these cases never reach it).
    fn deps() -> TestDeps {
        let config = ConnectorConfig::parse(include_str!("../../../local/connector.yaml"))
            .expect("local/connector.yaml");
        let dam = OrangeLogicClient::new(Settings::new(
            "http://127.0.0.1:9",
            Auth::StaticBearer(Secret::new("t")),
        ))
        .expect("client");
        ReviewFlow {
            reviews: InMemoryReviewStore::default(),
            directory: InMemoryContactDirectory::default(),
            conversations: InMemoryConversationStore::default(),
            outbound: InMemoryOutboundQueue::default(),
            leases: InMemoryIdempotencyStore::default(),
            dam: Arc::new(dam),
            pseudonyms: Pseudonymizer::new(&Secret::new("k")),
            settings: ReviewSettings::from_config(&config),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(120)
    }

    fn event(json: &str) -> serde_json::Value {
        serde_json::from_str(json).expect("event file")
    }

    #[tokio::test]
    async fn records_that_are_neither_events_nor_answers_are_dead_lettered_not_retried() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let answer = handle(
            &deps,
            &records,
            event(include_str!(
                "../../../events/notify-review-request/malformed.json"
            )),
            far(),
        )
        .await
        .expect("a batch");
        assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
        let dead = records.dead_letters();
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead[0].1.contains("neither a domain event nor an answer"));
    }

    #[tokio::test]
    async fn a_tap_on_a_request_that_does_not_exist_is_told_politely_and_decides_nothing() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let answer = handle(
            &deps,
            &records,
            event(include_str!(
                "../../../events/notify-review-request/approve-tap-without-request.json"
            )),
            far(),
        )
        .await
        .expect("a batch");
        assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
        let sent = deps.outbound.events();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let body = serde_json::to_value(&sent[0].content).expect("json");
        assert!(
            body["body"]
                .as_str()
                .is_some_and(|b| b.contains("no longer open")),
            "{body}"
        );
        assert_eq!(deps.reviews.request("2RLQZBQ84U"), None);
    }

    #[tokio::test]
    async fn the_reminder_schedule_with_nothing_due_reminds_nobody() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let answer = handle(
            &deps,
            &records,
            event(include_str!(
                "../../../events/notify-review-request/reminders.json"
            )),
            far(),
        )
        .await
        .expect("reminders");
        assert_eq!(answer, serde_json::json!({"reminded": 0}));
        assert!(deps.outbound.events().is_empty());
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "REVIEWS_TABLE",
            "CONTACTS_TABLE",
            "CONVERSATIONS_TABLE",
            "COMMENT_LEASES_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "ORANGE_LOGIC_BASE_URL",
            "ORANGE_LOGIC_CLIENT_ID",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn the_reminder_schedule_input_is_the_one_the_template_gives() {
        let template = include_str!("../../../template.yaml");
        assert!(template.contains(r#"Input: '{"remind":"due"}'"#));
        let _: RemindRequest = serde_json::from_str(r#"{"remind":"due"}"#).expect("input");
    }
}
