//! `intake-ugc-submission`: consumes `ugc-intake.fifo` (SQS, partial batch responses): a customer's
//! photo or video is staged and consent asked, a Yes / No tap files or deletes it; and the
//! scheduled sweep (`{"sweep":"consent"}`) reminds once, then deletes what was never answered.
//! The flow is `shared::flows::ugc_intake`; docs/ugc.md tells the whole story.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::adapters::staging::S3Staging;
use shared::adapters::ugc_store::DynamoUgcStore;
use shared::config::{ConfigError, Env};
use shared::connector_config::{
    ConnectorConfig, ConnectorConfigError, ConnectorConfigLocation, DamConcept, Purpose,
};
use shared::domain::outbound::FlowQueueMessage;
use shared::domain::ugc::Hold;
use shared::error::Retryable;
use shared::flows::ugc_intake::{UgcError, UgcIntake, UgcSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::OutboundQueue;
use shared::secrets::{SecretsError, SecretsLocation};
use shared::whatsapp::client::{GraphApiConfig, WhatsAppClient};
use shared::whatsapp::errors::ApiError;
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pending submissions and consent records.
    pub ugc_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `ugc-intake.fifo`.
    pub dead_letter_queue_url: String,
    /// The staging bucket.
    pub staging_bucket: String,
    /// Graph's host and version.
    pub graph: GraphApiConfig,
    /// `CONSENT_REMINDER_SECONDS`: unanswered this long, one reminder.
    pub remind_after: Duration,
    /// `CONSENT_HOLD_DAYS` (or `CONSENT_HOLD_SECONDS`, for tests and the demo): then deleted.
    pub hold: Duration,
    /// The DAM.
    pub orange_logic: OrangeLogicLocation,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads the variables of `lookup`, reporting every missing one at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let ugc_table = env.required("UGC_TABLE");
        let outbound_queue_url = env.required("OUTBOUND_QUEUE_URL");
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let staging_bucket = env.required("MEDIA_STAGING_BUCKET");
        let mut graph = GraphApiConfig::meta(String::new());
        if let Some(base_url) = env.optional("WHATSAPP_GRAPH_BASE_URL") {
            graph.base_url = base_url.trim_end_matches('/').to_owned();
        }
        graph.timeout = Duration::from_millis(env.parsed_or("WHATSAPP_GRAPH_TIMEOUT_MS", 60_000));
        let remind_after = Duration::from_secs(env.parsed_or("CONSENT_REMINDER_SECONDS", 14_400));
        let hold_days: u64 = env.parsed_or("CONSENT_HOLD_DAYS", 3);
        let hold = Duration::from_secs(env.parsed_or("CONSENT_HOLD_SECONDS", hold_days * 86_400));
        let orange_logic = OrangeLogicLocation::from_env(&mut env);
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            ugc_table,
            outbound_queue_url,
            dead_letter_queue_url,
            staging_bucket,
            graph,
            remind_after,
            hold,
            orange_logic,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<O = SqsOutboundQueue> = UgcIntake<O>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("intake-ugc-submission cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("intake-ugc-submission cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// A secret is missing.
    #[error("intake-ugc-submission needs `{0}` in the connector secrets")]
    MissingSecret(&'static str),
    /// The Graph client could not be built.
    #[error("intake-ugc-submission cannot build the Graph client")]
    Graph(#[from] ApiError),
    /// The Orange Logic client could not be made.
    #[error("intake-ugc-submission cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
}

/// The flow's settings from the connector configuration and the function's delays.
pub fn settings(connector: &ConnectorConfig, config: &Config) -> UgcSettings {
    let field = |concept, default: &str| {
        connector
            .dam
            .field_map
            .get(&concept)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    UgcSettings {
        routing: connector.routing.ugc.clone(),
        fields: connector.dam.ingest_fields.clone(),
        campaign_field: field(DamConcept::Campaign, "Custom.Campaign"),
        rights_field: field(DamConcept::UsageRights, "CoreField.UsageRights"),
        number_campaigns: connector
            .whatsapp
            .business_numbers
            .iter()
            .filter(|n| n.purposes.contains(&Purpose::UgcIntake))
            .filter_map(|n| Some((n.phone_number_id.clone(), n.campaign.clone()?)))
            .collect(),
        max_file_mb: connector.routing.field_ingest.max_file_mb,
        allowed_types: vec![
            "image/jpeg".into(),
            "image/png".into(),
            "image/webp".into(),
            "image/heic".into(),
            "video/mp4".into(),
            "video/3gpp".into(),
            "video/quicktime".into(),
        ],
        hold: Hold {
            remind_after: i64::try_from(config.remind_after.as_secs()).unwrap_or(i64::MAX),
            expire_after: i64::try_from(config.hold.as_secs()).unwrap_or(i64::MAX),
        },
        upload_mode: "ProcessFullyInBackground".into(),
    }
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let dam = connect::client(&config.orange_logic, &secrets, &connector)?;
    let token = secrets
        .whatsapp_access_token
        .clone()
        .filter(|t| !t.expose().is_empty())
        .ok_or(StartError::MissingSecret("whatsapp_access_token"))?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(UgcIntake {
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs, &config.outbound_queue_url)),
        store: DynamoUgcStore::new(dynamodb, &config.ugc_table),
        staging: S3Staging::new(aws, &config.staging_bucket),
        graph: WhatsAppClient::new(config.graph.clone(), token)?,
        dam,
        settings: settings(&connector, config),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `ugc-intake.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "intake-ugc-submission";
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

/// The sweep schedule's input (`Input` of the ScheduleV2 event in template.yaml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Always `consent`.
    pub sweep: SweepKind,
}

/// Which sweep.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    /// Pending submissions waiting for consent.
    Consent,
}

/// An invocation that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Neither an SQS batch nor a sweep request.
    #[error("the invocation is neither an SQS batch nor a sweep request")]
    UnknownInvocation(#[source] serde_json::Error),
    /// The sweep failed; the next schedule covers the same ground.
    #[error("the consent sweep failed")]
    Sweep(#[from] UgcError),
    /// The answer could not be encoded.
    #[error("cannot encode the answer")]
    Encode(#[source] serde_json::Error),
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a routed message: it never will be.
    #[error("the record is not a routed message")]
    Malformed(#[source] Option<serde_json::Error>),
    /// The flow failed.
    #[error(transparent)]
    Ugc(#[from] UgcError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Ugc(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: a 100 MB download into S3, or a photo read, stripped and
/// uploaded, each with its retries.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(120);

/// Dispatches an invocation: an SQS batch (answered with the failed ids) or the sweep (answered
/// with how many submissions were reminded and deleted).
pub async fn handle<O, Q>(
    flow: &Deps<O>,
    records: &Q,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, HandleError>
where
    O: OutboundQueue,
    Q: RecordQueues,
{
    if payload.get("Records").is_some() {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
        let policy = BatchPolicy {
            record_worst_case: RECORD_WORST_CASE.min(
                deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(Duration::from_secs(3)),
            ),
            ..BatchPolicy::default()
        };
        let response = process_records(event, deadline, &policy, records, |record| {
            handle_record(flow, record)
        })
        .await;
        return serde_json::to_value(response).map_err(HandleError::Encode);
    }
    let _: SweepRequest =
        serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
    let swept = flow
        .sweep(jiff::Timestamp::now().as_second())
        .await
        .inspect_err(|error| {
            tracing::error!(error = %shared::error::chain(error), "UGC consent sweep failed");
        })?;
    Ok(serde_json::json!({ "reminded": swept.reminded, "expired": swept.expired }))
}

async fn handle_record<O: OutboundQueue>(
    flow: &Deps<O>,
    record: SqsMessage,
) -> Result<(), RecordError> {
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Malformed(Some(e)))?;
    match message {
        FlowQueueMessage::Answer(routed) => {
            let outcome = flow.handle(&routed).await?;
            tracing::info!(outcome = ?outcome, "UGC queue message handled");
            Ok(())
        }
        // Change detection publishes no events for this flow.
        FlowQueueMessage::Event(_) => Err(RecordError::Malformed(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "UGC_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "MEDIA_STAGING_BUCKET",
            "ORANGE_LOGIC_BASE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn the_hold_is_in_days_unless_seconds_are_given() {
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                extra
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
                    .or_else(|| {
                        (!name.starts_with("CONSENT_")
                            && !name.ends_with("_MS")
                            && name != "ORANGE_LOGIC_AUTH")
                            .then(|| "x".to_owned())
                    })
            }
        };
        let days = Config::from_lookup(vars(&[("CONSENT_HOLD_DAYS", "2")])).expect("config");
        assert_eq!(days.hold, Duration::from_secs(2 * 86_400));
        let seconds = Config::from_lookup(vars(&[("CONSENT_HOLD_SECONDS", "5")])).expect("config");
        assert_eq!(seconds.hold, Duration::from_secs(5));
        let sweep: SweepRequest = serde_json::from_str(include_str!(
            "../../../events/intake-ugc-submission/sweep.json"
        ))
        .expect("the sweep event");
        assert!(matches!(sweep.sweep, SweepKind::Consent));
    }
}
