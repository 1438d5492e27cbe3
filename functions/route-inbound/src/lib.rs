//! `route-inbound`: consumes `inbound.fifo` (SQS, partial batch responses). Each message is checked
//! against the items its conversation saw last, opt-out and opt-in commands are honoured first,
//! the item goes to its flow's queue, and the conversation records it (see
//! `shared::flows::route_inbound` and docs/conversation-core.md).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::sent_lookup::DynamoSentMessageLookup;
use shared::adapters::sqs_json::{SqsInboundRoutes, SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::inbound::InboundItem;
use shared::domain::outbound::MessageFlow;
use shared::domain::routing::Destination;
use shared::error::Retryable;
use shared::flows::route_inbound::{InboundRouter, Numbers, RouteError, RouterSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{
    ContactDirectory, ConversationStore, InboundRoutes, OutboundQueue, SentMessageLookup,
};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The queue URL variable of each destination (answers go to their flow's queue: [`REPLY_QUEUES`]).
pub const DESTINATION_QUEUES: [(Destination, &str); 5] = [
    (Destination::DeliveryStatus, "DELIVERY_STATUS_QUEUE_URL"),
    (Destination::Sharing, "SHARING_QUEUE_URL"),
    (Destination::FieldIngest, "FIELD_INGEST_QUEUE_URL"),
    (Destination::UgcIntake, "UGC_INTAKE_QUEUE_URL"),
    (Destination::Unrouted, "UNROUTED_QUEUE_URL"),
];

/// The queue an answer to each flow's messages goes to: the flow's own queue.
pub const REPLY_QUEUES: [(MessageFlow, &str); 7] = [
    (MessageFlow::Review, "REVIEW_QUEUE_URL"),
    (MessageFlow::IssueAlert, "ISSUE_ALERT_QUEUE_URL"),
    (MessageFlow::Campaign, "CAMPAIGN_QUEUE_URL"),
    (MessageFlow::RightsExpiry, "RIGHTS_EXPIRY_QUEUE_URL"),
    (MessageFlow::Sharing, "SHARING_QUEUE_URL"),
    (MessageFlow::FieldIngest, "FIELD_INGEST_QUEUE_URL"),
    (MessageFlow::UgcIntake, "UGC_INTAKE_QUEUE_URL"),
];

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The contact directory.
    pub contacts_table: String,
    /// Conversation state.
    pub conversations_table: String,
    /// What sent messages were about (written by the sender).
    pub sent_messages_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The flow queues.
    pub destination_queues: BTreeMap<Destination, String>,
    /// The queue answers to each flow's messages go to.
    pub reply_queues: BTreeMap<MessageFlow, String>,
    /// The dead-letter queue of `inbound.fifo`, for items that can never be handled.
    pub dead_letter_queue_url: String,
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
        let contacts_table = env.required("CONTACTS_TABLE");
        let conversations_table = env.required("CONVERSATIONS_TABLE");
        let sent_messages_table = env.required("SENT_MESSAGES_TABLE");
        let outbound_queue_url = env.required("OUTBOUND_QUEUE_URL");
        let destination_queues = DESTINATION_QUEUES
            .into_iter()
            .map(|(destination, name)| (destination, env.required(name)))
            .collect();
        let reply_queues = REPLY_QUEUES
            .into_iter()
            .map(|(flow, name)| (flow, env.required(name)))
            .collect();
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            contacts_table,
            conversations_table,
            sent_messages_table,
            outbound_queue_url,
            destination_queues,
            reply_queues,
            dead_letter_queue_url,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<
    D = DynamoContactDirectory,
    C = DynamoConversationStore,
    S = DynamoSentMessageLookup,
    O = SqsOutboundQueue,
    R = SqsInboundRoutes,
> = InboundRouter<D, C, S, O, R>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("route-inbound cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("route-inbound cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(InboundRouter {
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        conversations: DynamoConversationStore::new(dynamodb.clone(), &config.conversations_table),
        sent: DynamoSentMessageLookup::new(dynamodb, &config.sent_messages_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs.clone(), &config.outbound_queue_url)),
        routes: SqsInboundRoutes::new(
            config
                .destination_queues
                .iter()
                .map(|(destination, url)| (*destination, SqsJsonQueue::new(sqs.clone(), url)))
                .collect(),
            config
                .reply_queues
                .iter()
                .map(|(flow, url)| (*flow, SqsJsonQueue::new(sqs.clone(), url)))
                .collect(),
        ),
        pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        numbers: Numbers::from_config(&connector),
        settings: RouterSettings::default(),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The router.
    pub router: Deps,
    /// The dead-letter queue and the source queue of `inbound.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "route-inbound";
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let router = connect(&config, aws).await?;
        let records = SqsRecordQueues::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dead_letter_queue_url,
            Self::NAME,
        );
        Ok(Self { router, records })
    }

    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, Self::Error> {
        Ok(handle_batch(&self.router, &self.records, event, deadline).await)
    }
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is not an inbound item: it will never be.
    #[error("the record is not an inbound item")]
    Malformed(#[source] serde_json::Error),
    /// Routing failed.
    #[error(transparent)]
    Route(#[from] RouteError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Route(e) => e.is_retryable(),
        }
    }
}

/// The most one item may take: a handful of DynamoDB round trips and two queue sends, each with
/// the SDK's own retries.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(10);

/// Handles the records of an `inbound.fifo` batch within the invocation's time; only retryable
/// failures and records left untried are reported, permanent ones go to the DLQ with their reason.
pub async fn handle_batch<D, C, S, O, R, Q>(
    router: &Deps<D, C, S, O, R>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    D: ContactDirectory,
    C: ConversationStore,
    S: SentMessageLookup,
    O: OutboundQueue,
    R: InboundRoutes,
    Q: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: RECORD_WORST_CASE,
        ..BatchPolicy::default()
    };
    process_records(event, deadline, &policy, records, |record| {
        handle_record(router, record)
    })
    .await
}

async fn handle_record<D, C, S, O, R>(
    router: &Deps<D, C, S, O, R>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    D: ContactDirectory,
    C: ConversationStore,
    S: SentMessageLookup,
    O: OutboundQueue,
    R: InboundRoutes,
{
    let item: InboundItem = serde_json::from_str(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    router.handle(&item, now_ms).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::connector_config::ConnectorConfig;
    use shared::domain::outbound::MessageFlow;
    use shared::secrets::Secret;
    use shared::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryInboundRoutes,
        InMemoryOutboundQueue, InMemoryRecordQueues, InMemorySentMessages,
    };

    type TestDeps = Deps<
        InMemoryContactDirectory,
        InMemoryConversationStore,
        InMemorySentMessages,
        InMemoryOutboundQueue,
        InMemoryInboundRoutes,
    >;

    fn deps() -> TestDeps {
        let config = ConnectorConfig::parse(include_str!("../../../local/connector.yaml"))
            .expect("local/connector.yaml");
        InboundRouter {
            directory: InMemoryContactDirectory::default(),
            conversations: InMemoryConversationStore::default(),
            sent: InMemorySentMessages::default(),
            outbound: InMemoryOutboundQueue::default(),
            routes: InMemoryInboundRoutes::default(),
            pseudonyms: Pseudonymizer::new(&Secret::new("k")),
            numbers: Numbers::from_config(&config),
            settings: RouterSettings::default(),
        }
    }

    fn event(json: &str) -> SqsEvent {
        serde_json::from_str(json).expect("event file")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_stop_record_opts_out_and_queues_one_confirmation() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let stop = include_str!("../../../events/route-inbound/stop.json");
        let response = handle_batch(&deps, &records, event(stop), far()).await;
        assert!(failed_ids(&response).is_empty());
        let again = handle_batch(&deps, &records, event(stop), far()).await;
        assert!(failed_ids(&again).is_empty());
        let entries = deps.directory.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].opted_out_at_ms, Some(1_795_703_398_000));
        let requests = deps.outbound.events();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].key.flow, MessageFlow::OptOut);
    }

    #[tokio::test]
    async fn a_mixed_batch_routes_the_status_and_the_ugc_image_and_acknowledges_the_error() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!(
                "../../../events/route-inbound/mixed-batch.json"
            )),
            far(),
        )
        .await;
        assert!(failed_ids(&response).is_empty());
        assert!(records.dead_letters().is_empty());
        assert_eq!(
            deps.routes.keys_on(Destination::DeliveryStatus),
            ["wamid.HBgLNDQ3NzAwOTAwMTIzFQIAERgSOUQ4QjdBQjE2:delivered"]
        );
        assert_eq!(
            deps.routes.keys_on(Destination::UgcIntake),
            ["wamid.HBgLNDQ3NzAwOTAwMTIzFQIAEhgUUGVyIEFydCBJbWFnZQ"]
        );
        assert_eq!(deps.routes.events().len(), 2);
    }

    #[tokio::test]
    async fn malformed_records_are_dead_lettered_with_their_reason_not_retried() {
        let deps = deps();
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!("../../../events/route-inbound/malformed.json")),
            far(),
        )
        .await;
        assert!(failed_ids(&response).is_empty(), "not retried");
        let dead = records.dead_letters();
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead[0].1.contains("not an inbound item"), "{dead:?}");
        assert!(dead[1].1.contains("names no sender"), "{dead:?}");
        assert!(deps.routes.events().is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_reports_the_record_for_retry() {
        let deps = deps();
        deps.routes.fail_next(1);
        let records = InMemoryRecordQueues::default();
        let response = handle_batch(
            &deps,
            &records,
            event(include_str!(
                "../../../events/route-inbound/mixed-batch.json"
            )),
            far(),
        )
        .await;
        // The status failed; the UGC image shares its FIFO group, so it waits too.
        assert_eq!(
            failed_ids(&response),
            [
                "1b0a7e00-0000-4000-8000-000000000001",
                "1b0a7e00-0000-4000-8000-000000000002"
            ]
        );
        assert!(records.dead_letters().is_empty());
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "CONTACTS_TABLE",
            "CONVERSATIONS_TABLE",
            "SENT_MESSAGES_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DELIVERY_STATUS_QUEUE_URL",
            "UNROUTED_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
