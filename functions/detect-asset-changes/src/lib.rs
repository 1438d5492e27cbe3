//! `detect-asset-changes`: consumes `dam-events` (SQS, partial batch responses) and the scheduled
//! poll of recently edited assets; both compare assets with their last known state and publish
//! domain events onto the flow queues.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::adapters::dynamodb::{DynamoAssetStateStore, DynamoIdempotencyStore};
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::orange_logic::source::OrangeLogicAssets;
use shared::adapters::orange_logic::{OrangeLogicClient, OrangeLogicError};
use shared::adapters::sqs_json::{SqsFlowPublisher, SqsJsonQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation};
use shared::domain::dam::{ChangeRules, DamEvent, Flow};
use shared::error::Retryable;
use shared::flows::detect_changes::{
    ChangeDetector, DetectError, DetectSettings, Handled, PollReport,
};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{AssetSource, AssetStateStore, FlowPublisher, IdempotencyStore};
use shared::secrets::{SecretsError, SecretsLocation};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Asset states and the poll watermark.
    pub asset_state_table: String,
    /// Idempotency claims on DAM event ids.
    pub claims_table: String,
    /// Flow queue URLs.
    pub flow_queues: BTreeMap<Flow, String>,
    /// The DAM.
    pub orange_logic: OrangeLogicLocation,
    /// DataTable resource for reads (`Documents.All` unless set).
    pub datatable_resource: Option<String>,
    /// How far back the first poll looks, seconds.
    pub first_poll_lookback_seconds: i64,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
    /// The dead-letter queue of `dam-events`, for records that can never succeed.
    pub dead_letter_queue_url: String,
}

impl Config {
    /// Reads the environment, reporting every missing variable at once.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any variable source.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let asset_state_table = env.required("ASSET_STATE_TABLE");
        let claims_table = env.required("DAM_EVENT_CLAIMS_TABLE");
        let flow_queues = [
            (Flow::Review, "REVIEW_QUEUE_URL"),
            (Flow::IssueAlert, "ISSUE_ALERT_QUEUE_URL"),
            (Flow::Campaign, "CAMPAIGN_QUEUE_URL"),
            (Flow::RightsExpiry, "RIGHTS_EXPIRY_QUEUE_URL"),
        ]
        .into_iter()
        .map(|(flow, name)| (flow, env.required(name)))
        .collect();
        let orange_logic = OrangeLogicLocation::from_env(&mut env);
        let datatable_resource = env.optional("ORANGE_LOGIC_DATATABLE_RESOURCE");
        let first_poll_lookback_seconds = env.parsed_or("POLL_FIRST_LOOKBACK_SECONDS", 3600_i64);
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        env.finish()?;
        Ok(Self {
            asset_state_table,
            claims_table,
            flow_queues,
            orange_logic,
            datatable_resource,
            first_poll_lookback_seconds,
            connector_config,
            secrets,
            dead_letter_queue_url,
        })
    }
}

/// The function's dependencies.
pub type Deps<
    S = OrangeLogicAssets,
    T = DynamoAssetStateStore,
    I = DynamoIdempotencyStore,
    P = SqsFlowPublisher,
> = ChangeDetector<S, T, I, P>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("detect-asset-changes cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("detect-asset-changes cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// No Orange Logic secret.
    #[error("detect-asset-changes cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
    /// The HTTP client could not be built.
    #[error("detect-asset-changes cannot build the Orange Logic client")]
    Client(#[from] OrangeLogicError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let mut settings = connect::settings(&config.orange_logic, &secrets, &connector)?;
    if let Some(resource) = &config.datatable_resource {
        settings.datatable.read.resource.clone_from(resource);
    }
    let rules = ChangeRules::from_settings(&connector.dam);
    let client = Arc::new(OrangeLogicClient::new(settings)?);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(ChangeDetector {
        source: OrangeLogicAssets::new(client, &rules, &connector.dam),
        rules,
        states: DynamoAssetStateStore::new(dynamodb.clone(), &config.asset_state_table),
        claims: DynamoIdempotencyStore::new(dynamodb, &config.claims_table),
        publisher: SqsFlowPublisher::new(
            config
                .flow_queues
                .iter()
                .map(|(flow, url)| (*flow, SqsJsonQueue::new(sqs.clone(), url)))
                .collect(),
        ),
        settings: DetectSettings {
            first_poll_lookback_seconds: config.first_poll_lookback_seconds,
            ..DetectSettings::default()
        },
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// Change detection.
    pub detector: Deps,
    /// The dead-letter queue and the source queue of `dam-events` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "detect-asset-changes";
    type Event = serde_json::Value;
    type Response = serde_json::Value;
    type Error = HandleError;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let detector = connect(&config, aws).await?;
        let records = SqsRecordQueues::new(
            aws_sdk_sqs::Client::new(aws),
            &config.dead_letter_queue_url,
            Self::NAME,
        );
        Ok(Self { detector, records })
    }

    async fn handle(
        &self,
        payload: serde_json::Value,
        deadline: Instant,
    ) -> Result<serde_json::Value, HandleError> {
        handle(&self.detector, &self.records, payload, deadline).await
    }
}

/// The scheduled poll's input (`Input` of the ScheduleV2 event in template.yaml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// Always `recently_edited`.
    pub poll: PollKind,
}

/// What to poll.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// Assets edited since the watermark.
    RecentlyEdited,
}

/// An invocation that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Neither an SQS batch nor a poll request.
    #[error("the invocation is neither an SQS batch nor a poll request")]
    UnknownInvocation(#[source] serde_json::Error),
    /// The poll failed; the watermark stays, the next schedule covers the same ground.
    #[error("the poll of recently edited assets failed")]
    Poll(#[from] DetectError),
    /// The answer could not be encoded.
    #[error("cannot encode the answer")]
    Encode(#[source] serde_json::Error),
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is not a DAM event: it will never be.
    #[error("the record is not a DAM event")]
    Malformed(#[source] serde_json::Error),
    /// Detection failed.
    #[error(transparent)]
    Detect(#[from] DetectError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Detect(e) => e.is_retryable(),
        }
    }
}

/// Dispatches an invocation: an SQS batch (answered with the failed ids) or a poll request
/// (answered with its report), both before `deadline`.
pub async fn handle<S, T, I, P, Q>(
    deps: &Deps<S, T, I, P>,
    records: &Q,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, HandleError>
where
    S: AssetSource,
    T: AssetStateStore,
    I: IdempotencyStore,
    P: FlowPublisher,
    Q: RecordQueues,
{
    if payload.get("Records").is_some() {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
        let response = handle_batch(deps, records, event, deadline).await;
        return serde_json::to_value(response).map_err(HandleError::Encode);
    }
    let _: PollRequest = serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
    let report = handle_poll(deps, deadline).await.inspect_err(|error| {
        tracing::error!(error = %shared::error::chain(error), "poll failed; the next schedule retries");
    })?;
    Ok(serde_json::json!({
        "scanned": report.scanned,
        "remaining": report.remaining,
        "published": report.published,
        "watermark": report.watermark,
    }))
}

/// The most one DAM event may take: a read of the asset (its timeout and one renewal), the state
/// round trips and the publish.
pub const RECORD_WORST_CASE: std::time::Duration = std::time::Duration::from_secs(25);

/// Handles the records of a `dam-events` batch within the invocation's time; only retryable
/// failures and records left untried are reported.
pub async fn handle_batch<S, T, I, P, Q>(
    deps: &Deps<S, T, I, P>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    S: AssetSource,
    T: AssetStateStore,
    I: IdempotencyStore,
    P: FlowPublisher,
    Q: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: RECORD_WORST_CASE,
        ..BatchPolicy::default()
    };
    // The claim's deadline: the invocation's, in Unix seconds.
    let left = deadline.saturating_duration_since(Instant::now());
    let claim_deadline = time::OffsetDateTime::now_utc().unix_timestamp()
        + i64::try_from(left.as_secs()).unwrap_or(0)
        + 1;
    process_records(event, deadline, &policy, records, |record| {
        handle_record(deps, record, claim_deadline)
    })
    .await
}

async fn handle_record<S, T, I, P>(
    deps: &Deps<S, T, I, P>,
    record: SqsMessage,
    deadline: i64,
) -> Result<(), RecordError>
where
    S: AssetSource,
    T: AssetStateStore,
    I: IdempotencyStore,
    P: FlowPublisher,
{
    let event: DamEvent = serde_json::from_str(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let handled = deps
        .handle_event(&event, now, deadline.max(now + 1))
        .await?;
    if handled == Handled::Gone {
        tracing::info!(asset = %event.asset, "asset no longer in the DAM; nothing to compare");
    }
    Ok(())
}

/// Time kept free at the end of an invocation for the last watermark write and the answer.
const POLL_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the scheduled poll within the invocation's time.
pub async fn handle_poll<S, T, I, P>(
    deps: &Deps<S, T, I, P>,
    deadline: Instant,
) -> Result<PollReport, DetectError>
where
    S: AssetSource,
    T: AssetStateStore,
    I: IdempotencyStore,
    P: FlowPublisher,
{
    let now = time::OffsetDateTime::now_utc();
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(POLL_MARGIN)
        .max(std::time::Duration::from_secs(1));
    deps.poll(now, budget).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::dam::{AssetId, AssetSnapshot, DomainEventKind};

    type TestDeps = shared::testing::InMemoryChangeDetector;

    fn deps() -> TestDeps {
        shared::testing::in_memory_change_detector()
    }

    fn asset(id: &str, status: &str) -> AssetSnapshot {
        AssetSnapshot {
            id: AssetId::parse(id).expect("id"),
            fields: [
                ("CoreField.Title", "Bridge"),
                ("CoreField.Photographer", "A. Field"),
                ("Custom.Campaign", "SUMMER26"),
                ("CoreField.Status", status),
                ("CoreField.EditDate", "2026-11-26T14:29:58"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        }
    }

    fn event_file(json: &str) -> serde_json::Value {
        serde_json::from_str(json).expect("event file")
    }

    fn failed_ids(answer: &serde_json::Value) -> Vec<String> {
        answer["batchItemFailures"]
            .as_array()
            .map(|failures| {
                failures
                    .iter()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(900)
    }

    fn records() -> shared::testing::InMemoryRecordQueues {
        shared::testing::InMemoryRecordQueues::default()
    }

    #[tokio::test]
    async fn a_batch_with_a_redelivered_event_publishes_one_review_request() {
        let deps = deps();
        deps.source.put(asset("2RLQZBQ84U", "Ready for Review"));
        let answer = handle(
            &deps,
            &records(),
            event_file(include_str!(
                "../../../events/detect-asset-changes/dam-events-batch.json"
            )),
            far(),
        )
        .await
        .expect("batch");
        assert!(failed_ids(&answer).is_empty(), "{answer}");
        assert_eq!(deps.publisher.kinds(), [DomainEventKind::ReadyForReview]);
    }

    #[tokio::test]
    async fn a_malformed_record_is_dead_lettered_and_a_dam_outage_is_reported_for_retry() {
        let deps = deps();
        deps.source.fail_next(1);
        let records = records();
        let answer = handle(
            &deps,
            &records,
            event_file(include_str!(
                "../../../events/detect-asset-changes/dam-events-malformed.json"
            )),
            far(),
        )
        .await
        .expect("batch");
        assert_eq!(
            failed_ids(&answer),
            ["c0ffee02-0000-4000-8000-000000000002"]
        );
        let dead = records.dead_letters();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert!(dead[0].1.contains("not a DAM event"), "{dead:?}");
    }

    #[tokio::test]
    async fn the_scheduled_poll_publishes_what_the_webhooks_missed() {
        let deps = deps();
        let recent = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let mut snapshot = asset("2QDTWAOP1_5", "Rejected");
        snapshot.fields.insert(
            "CoreField.EditDate".into(),
            shared::flows::detect_changes::dam_timestamp(recent),
        );
        deps.source.put(snapshot);
        let answer = handle(
            &deps,
            &records(),
            event_file(include_str!(
                "../../../events/detect-asset-changes/scheduled-poll.json"
            )),
            far(),
        )
        .await
        .expect("poll");
        assert_eq!(answer["scanned"], 1);
        assert_eq!(deps.publisher.kinds(), [DomainEventKind::Rejected]);
    }

    #[tokio::test]
    async fn an_unknown_invocation_is_an_error() {
        let err = handle(
            &deps(),
            &records(),
            serde_json::json!({"detail": {}}),
            far(),
        )
        .await
        .expect_err("unknown");
        assert!(matches!(err, HandleError::UnknownInvocation(_)));
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "ASSET_STATE_TABLE",
            "DAM_EVENT_CLAIMS_TABLE",
            "REVIEW_QUEUE_URL",
            "ORANGE_LOGIC_BASE_URL",
            "ORANGE_LOGIC_CLIENT_ID",
            "DEAD_LETTER_QUEUE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn bearer_mode_needs_no_client_id() {
        let vars: BTreeMap<&str, &str> = [
            ("ASSET_STATE_TABLE", "t"),
            ("DAM_EVENT_CLAIMS_TABLE", "c"),
            ("REVIEW_QUEUE_URL", "q1"),
            ("ISSUE_ALERT_QUEUE_URL", "q2"),
            ("CAMPAIGN_QUEUE_URL", "q3"),
            ("RIGHTS_EXPIRY_QUEUE_URL", "q4"),
            ("ORANGE_LOGIC_BASE_URL", "https://dam.example.com"),
            ("ORANGE_LOGIC_AUTH", "bearer"),
            ("CONNECTOR_CONFIG_FILE", "local/connector.yaml"),
            ("CONNECTOR_SECRETS_FILE", "local/secrets.json"),
            ("DEAD_LETTER_QUEUE_URL", "dlq"),
        ]
        .into();
        let config = Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).expect("ok");
        assert!(config.orange_logic.bearer);
        assert!(config.orange_logic.client_id.is_empty());
    }
}
