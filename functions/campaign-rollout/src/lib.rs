//! `campaign-rollout`: consumes `campaign.fifo` (SQS, partial batch responses). "Campaign package
//! approved" events notify each regional contact covering one of the package's regions; their
//! answers (Confirm receipt, Request another format → the chosen rendition, Flag an issue → a
//! short description) are logged once on the package in the DAM and recorded per region; the
//! `status <campaign>` command answers with the status per region. The flow is
//! `shared::flows::campaign_rollout`; docs/campaign.md tells the whole story.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::campaigns::DynamoCampaignStore;
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::campaign_rollout::{CampaignError, CampaignFlow, CampaignSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{
    CampaignStore, ContactDirectory, ConversationStore, IdempotencyStore, OutboundQueue,
};
use shared::secrets::{SecretsError, SecretsLocation};
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Rollouts and each recipient's answers.
    pub campaign_rollouts_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// Conversation state (a flag's description awaited).
    pub conversations_table: String,
    /// Per-asset comment leases, shared with the other DAM comment writers.
    pub comment_leases_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `campaign.fifo`.
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
        let campaign_rollouts_table = env.required("CAMPAIGN_ROLLOUTS_TABLE");
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
            campaign_rollouts_table,
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
    S = DynamoCampaignStore,
    D = DynamoContactDirectory,
    C = DynamoConversationStore,
    O = SqsOutboundQueue,
    L = DynamoIdempotencyStore,
> = CampaignFlow<S, D, C, O, L>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("campaign-rollout cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("campaign-rollout cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// The Orange Logic client could not be made.
    #[error("campaign-rollout cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let dam = connect::client(&config.orange_logic, &secrets, &connector)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(CampaignFlow {
        rollouts: DynamoCampaignStore::new(dynamodb.clone(), &config.campaign_rollouts_table),
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        conversations: DynamoConversationStore::new(dynamodb.clone(), &config.conversations_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs, &config.outbound_queue_url)),
        leases: DynamoIdempotencyStore::new(dynamodb, &config.comment_leases_table),
        dam,
        settings: CampaignSettings::from_config(&connector),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `campaign.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "campaign-rollout";
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
    Campaign(#[from] CampaignError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Campaign(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: a package and its members read, a link per member, a comment
/// with its check under a lease that may have to wait, and the queue sends.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(40);

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Handles the records of a `campaign.fifo` batch within the invocation's time.
pub async fn handle_batch<S, D, C, O, L, Q>(
    flow: &Deps<S, D, C, O, L>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    S: CampaignStore,
    D: ContactDirectory,
    C: ConversationStore,
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

async fn handle_record<S, D, C, O, L>(
    flow: &Deps<S, D, C, O, L>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    S: CampaignStore,
    D: ContactDirectory,
    C: ConversationStore,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let handled = flow.handle(&message, now_ms()).await?;
    tracing::info!(outcome = ?handled, "campaign queue message handled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "CAMPAIGN_ROLLOUTS_TABLE",
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
}
