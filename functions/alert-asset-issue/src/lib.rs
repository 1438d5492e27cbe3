//! `alert-asset-issue`: consumes `issue-alerts.fifo` (SQS, partial batch responses): a rejected
//! asset, one missing required metadata or one blocked by policy → one alert to its owner (else
//! the configured fallback contact) with the reason and a fresh link, and a note on the asset.
//! The flow is `shared::flows::issue_alert`; docs/review.md tells the whole story.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::directory::DynamoContactDirectory;
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::reviews::DynamoReviewStore;
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::issue_alert::{AlertError, IssueAlertFlow, IssueSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{ContactDirectory, IdempotencyStore, OutboundQueue, ReviewStore};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Review decisions (read only: a WhatsApp rejection's reviewer and reason).
    pub reviews_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// Per-asset comment leases, shared with the other DAM comment writers.
    pub comment_leases_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `issue-alerts.fifo`.
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
    O = SqsOutboundQueue,
    L = DynamoIdempotencyStore,
> = IssueAlertFlow<R, D, O, L>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("alert-asset-issue cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("alert-asset-issue cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// The Orange Logic client could not be made.
    #[error("alert-asset-issue cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let dam = connect::client(&config.orange_logic, &secrets, &connector)?;
    let settings = IssueSettings::from_config(&connector);
    if settings.fallback.is_none() {
        tracing::warn!(
            "issue_alerts.fallback_contact is not configured: alerts for owners the directory does not know reach nobody"
        );
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(IssueAlertFlow {
        reviews: DynamoReviewStore::new(dynamodb.clone(), &config.reviews_table),
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs, &config.outbound_queue_url)),
        leases: DynamoIdempotencyStore::new(dynamodb, &config.comment_leases_table),
        dam,
        pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        settings,
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `issue-alerts.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "alert-asset-issue";
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = std::convert::Infallible;

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
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, Self::Error> {
        Ok(handle_batch(&self.flow, &self.records, event, deadline).await)
    }
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is neither a domain event nor an answer: it will never be.
    #[error("the record is neither a domain event nor an answer")]
    Malformed(#[source] serde_json::Error),
    /// The flow failed.
    #[error(transparent)]
    Alert(#[from] AlertError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Alert(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: DAM read, link, the note with its check under a lease that may
/// have to wait, one queue send.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(40);

/// Handles the records of an `issue-alerts.fifo` batch within the invocation's time.
pub async fn handle_batch<R, D, O, L, Q>(
    flow: &Deps<R, D, O, L>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    R: ReviewStore,
    D: ContactDirectory,
    O: OutboundQueue,
    L: IdempotencyStore,
    Q: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: RECORD_WORST_CASE,
        ..BatchPolicy::default()
    };
    process_records(event, deadline, &policy, records, |record| {
        handle_record(flow, record)
    })
    .await
}

async fn handle_record<R, D, O, L>(
    flow: &Deps<R, D, O, L>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    R: ReviewStore,
    D: ContactDirectory,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let handled = flow
        .handle(&message, jiff::Timestamp::now().as_millisecond())
        .await?;
    tracing::info!(outcome = ?handled, "issue alert queue message handled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::adapters::orange_logic::{Auth, OrangeLogicClient, Settings};
    use shared::connector_config::ConnectorConfig;
    use shared::secrets::Secret;
    use shared::testing::{
        InMemoryContactDirectory, InMemoryIdempotencyStore, InMemoryOutboundQueue,
        InMemoryRecordQueues, InMemoryReviewStore,
    };
    use std::sync::Arc;

    type TestDeps = Deps<
        InMemoryReviewStore,
        InMemoryContactDirectory,
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
        IssueAlertFlow {
            reviews: InMemoryReviewStore::default(),
            directory: InMemoryContactDirectory::default(),
            outbound: InMemoryOutboundQueue::default(),
            leases: InMemoryIdempotencyStore::default(),
            dam: Arc::new(dam),
            pseudonyms: Pseudonymizer::new(&Secret::new("k")),
            settings: IssueSettings::from_config(&config),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(120)
    }

    fn event(json: &str) -> SqsEvent {
        serde_json::from_str(json).expect("event file")
    }

    #[tokio::test]
    async fn a_record_that_is_not_a_domain_event_is_dead_lettered_not_retried() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!(
                "../../../events/alert-asset-issue/malformed.json"
            )),
            far(),
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(records.dead_letters().len(), 1);
        assert!(deps.outbound.events().is_empty());
    }

    #[tokio::test]
    async fn an_owners_reply_to_an_alert_is_acknowledged_and_sends_nothing() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!(
                "../../../events/alert-asset-issue/owner-reply.json"
            )),
            far(),
        )
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert!(records.dead_letters().is_empty());
        assert!(deps.outbound.events().is_empty());
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "REVIEWS_TABLE",
            "CONTACTS_TABLE",
            "COMMENT_LEASES_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "ORANGE_LOGIC_BASE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
