//! `scan-rights-expiry` (flow 3): fired by its schedule, it scans the DAM for rights ending inside
//! the alert windows (date-range searches, resumed from a cursor when one invocation is not
//! enough) and sends the digests that are due; as the consumer of `rights-expiry.fifo` it handles
//! expiry changes and deletions from change detection and the actions recipients take from an
//! alert. The flow is `shared::flows::rights_expiry`; docs/rights-expiry.md says what it does.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use shared::adapters::directory::DynamoContactDirectory;
use shared::adapters::expiry_ledger::DynamoExpiryLedger;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::orange_logic::expiry::OrangeLogicExpiryCatalogue;
use shared::adapters::orange_logic::{OrangeLogicClient, OrangeLogicError};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{
    ConnectorConfig, ConnectorConfigError, ConnectorConfigLocation, DamConcept,
};
use shared::domain::dam::{DamDates, DamInstant};
use shared::domain::expiry::Windows;
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::rights_expiry::{
    ExpiryError, ExpiryFields, ExpirySettings, RightsExpiry, ScanReport,
};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{ContactDirectory, ExpiryCatalogue, ExpiryLedger, OutboundQueue};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Flow 3's table: alerts, pending digests, the scan cursor.
    pub expiry_alerts_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `rights-expiry.fifo`.
    pub dead_letter_queue_url: String,
    /// The Orange Logic instance and how to authenticate.
    pub orange_logic: OrangeLogicLocation,
    /// How far back ended rights of assets still approved are searched, days.
    pub expired_lookback_days: u32,
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
        let expiry_alerts_table = env.required("EXPIRY_ALERTS_TABLE");
        let contacts_table = env.required("CONTACTS_TABLE");
        let outbound_queue_url = env.required("OUTBOUND_QUEUE_URL");
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let orange_logic = OrangeLogicLocation::from_env(&mut env);
        let expired_lookback_days = env.parsed_or("EXPIRED_LOOKBACK_DAYS", 90_u32);
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            expiry_alerts_table,
            contacts_table,
            outbound_queue_url,
            dead_letter_queue_url,
            orange_logic,
            expired_lookback_days,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<
    C = OrangeLogicExpiryCatalogue,
    L = DynamoExpiryLedger,
    D = DynamoContactDirectory,
    O = SqsOutboundQueue,
> = RightsExpiry<C, L, D, O>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("scan-rights-expiry cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("scan-rights-expiry cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// No Orange Logic secret, or the client could not be built.
    #[error("scan-rights-expiry cannot connect to Orange Logic")]
    OrangeLogic(#[from] ConnectError),
    /// The instance's time zone is unknown (reported by the configuration check first).
    #[error("scan-rights-expiry: dam.dates.time_zone is not a known time zone")]
    TimeZone,
    /// The HTTP client could not be built.
    #[error("scan-rights-expiry cannot build the Orange Logic client")]
    Client(#[from] OrangeLogicError),
}

/// The flow's settings from the connector configuration.
pub fn settings(
    connector: &ConnectorConfig,
    base_url: &str,
    expired_lookback_days: u32,
) -> Result<ExpirySettings, StartError> {
    let dam = &connector.dam;
    let field = |concept: DamConcept| dam.field_map.get(&concept).cloned().unwrap_or_default();
    Ok(ExpirySettings {
        windows: Windows::new(&connector.alerts.expiry_windows_days),
        expired_lookback_days,
        fields: ExpiryFields {
            expiry: field(DamConcept::ExpiryDate),
            licence_end: field(DamConcept::LicenceEnd),
            status: field(DamConcept::Status),
            owner: field(DamConcept::Owner),
            campaign: field(DamConcept::Campaign),
            title: "CoreField.Title".into(),
            doc_type: "CoreField.DocType".into(),
        },
        dates: DamDates::from_settings(&dam.dates).map_err(|_| StartError::TimeZone)?,
        approved_status: dam.status_values.approved.clone(),
        withdrawn_status: connector.alerts.withdrawn_status.clone(),
        asset_link_prefix: connector
            .alerts
            .asset_link_prefix
            .clone()
            .unwrap_or_else(|| format!("{}/AssetLink/", base_url.trim_end_matches('/'))),
        alert_ttl_seconds: 400 * 24 * 3600,
        time_margin: Duration::from_secs(30),
        page_size: usize::from(shared::adapters::orange_logic::MAX_PER_PAGE),
    })
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let mut client_settings = connect::settings(&config.orange_logic, &secrets, &connector)?;
    // The flow writes comments and statuses: muted, so they do not come back as webhooks.
    client_settings.mute_webhook_topics = Some("*".into());
    let settings = settings(
        &connector,
        &config.orange_logic.base_url,
        config.expired_lookback_days,
    )?;
    let client = Arc::new(OrangeLogicClient::new(client_settings)?);
    let comments = connector
        .dam
        .field_map
        .get(&DamConcept::Comments)
        .cloned()
        .unwrap_or_default();
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(RightsExpiry {
        catalogue: OrangeLogicExpiryCatalogue::new(
            client,
            settings.fields.all(),
            settings.dates.clone(),
            comments,
        ),
        ledger: DynamoExpiryLedger::new(dynamodb.clone(), &config.expiry_alerts_table),
        directory: DynamoContactDirectory::new(dynamodb, &config.contacts_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs, &config.outbound_queue_url)),
        pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        settings,
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `rights-expiry.fifo` records.
    pub records: SqsRecordQueues,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "scan-rights-expiry";
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

/// The schedule's input (`Input` of the ScheduleV2 event in template.yaml).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Always `rights_expiry`.
    pub scan: ScanKind,
    /// Scan as of this instant (RFC 3339 or canonical UTC) instead of now: to replay a missed
    /// day by hand, and for tests. Windows and quiet hours are judged at this instant.
    #[serde(default)]
    pub as_of: Option<String>,
}

/// The one kind of scan.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanKind {
    /// Rights ending inside the alert windows.
    RightsExpiry,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Neither an SQS batch nor a scan request.
    #[error("the invocation is neither an SQS batch nor a scan request")]
    UnknownInvocation(#[source] serde_json::Error),
    /// `as_of` is not a date.
    #[error("as_of is not an RFC 3339 or canonical UTC date")]
    AsOf,
    /// The scan failed; its cursor is kept, the next schedule goes on.
    #[error("the rights-expiry scan failed")]
    Scan(#[from] ExpiryError),
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
    Flow(#[from] ExpiryError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Flow(e) => e.is_retryable(),
        }
    }
}

fn now() -> DamInstant {
    DamInstant::from_unix_seconds(time::OffsetDateTime::now_utc().unix_timestamp())
        .unwrap_or_else(|| DamInstant::from_unix_seconds(0).expect("the epoch"))
}

/// Routes an invocation: an SQS batch of `rights-expiry.fifo`, or the scheduled scan.
pub async fn handle<C, L, D, O, Q>(
    flow: &Deps<C, L, D, O>,
    records: &Q,
    payload: serde_json::Value,
    deadline: Instant,
) -> Result<serde_json::Value, HandleError>
where
    C: ExpiryCatalogue,
    L: ExpiryLedger,
    D: ContactDirectory,
    O: OutboundQueue,
    Q: RecordQueues,
{
    if payload.get("Records").is_some() {
        let event: SqsEvent =
            serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
        let response = handle_batch(flow, records, event, deadline).await;
        return serde_json::to_value(response).map_err(HandleError::Encode);
    }
    let request: ScanRequest =
        serde_json::from_value(payload).map_err(HandleError::UnknownInvocation)?;
    let at = match request.as_of.as_deref() {
        Some(text) => DamInstant::parse_canonical(text).ok_or(HandleError::AsOf)?,
        None => now(),
    };
    let report: ScanReport = flow.scan(at, deadline).await.inspect_err(|error| {
        tracing::error!(error = %shared::error::chain(error), "rights-expiry scan failed; the next schedule resumes from its cursor");
    })?;
    tracing::info!(
        scanned = report.scanned,
        alerted = report.alerted,
        complete = report.complete,
        digests_sent = report.digests_sent,
        digests_held = report.digests_held,
        "rights-expiry scan"
    );
    serde_json::to_value(report).map_err(HandleError::Encode)
}

/// The most one record may take: a DAM read or write (with one renewal) and a few table round trips.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(25);

/// Handles the records of a `rights-expiry.fifo` batch within the invocation's time.
pub async fn handle_batch<C, L, D, O, Q>(
    flow: &Deps<C, L, D, O>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    C: ExpiryCatalogue,
    L: ExpiryLedger,
    D: ContactDirectory,
    O: OutboundQueue,
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

async fn handle_record<C, L, D, O>(
    flow: &Deps<C, L, D, O>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    C: ExpiryCatalogue,
    L: ExpiryLedger,
    D: ContactDirectory,
    O: OutboundQueue,
{
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let handled = match message {
        FlowQueueMessage::Event(event) => flow.on_event(&event, now()).await?,
        FlowQueueMessage::Answer(routed) => flow.on_answer(&routed, now()).await?,
    };
    tracing::info!(handled = ?handled, "rights-expiry message handled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_setting_is_named_with_every_other_missing_one() {
        let error = Config::from_lookup(|_| None).expect_err("nothing is set");
        let text = error.to_string();
        for name in [
            "EXPIRY_ALERTS_TABLE",
            "CONTACTS_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "ORANGE_LOGIC_BASE_URL",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }

    #[test]
    fn an_expiry_change_on_the_queue_reads_as_a_domain_event() {
        let file = include_str!("../../../events/scan-rights-expiry/expiry-changed.json");
        let event: SqsEvent = serde_json::from_str(file).expect("an SQS event");
        let body = event.records[0].body.as_deref().expect("a body");
        match FlowQueueMessage::parse(body).expect("a flow message") {
            FlowQueueMessage::Event(event) => assert!(matches!(
                event.kind,
                shared::domain::dam::DomainEventKind::ExpiryChanged { .. }
            )),
            FlowQueueMessage::Answer(_) => panic!("an event, not an answer"),
        }
    }

    #[test]
    fn the_schedule_input_is_a_scan_request_and_anything_else_is_refused() {
        let input = include_str!("../../../events/scan-rights-expiry/schedule.json");
        let request: ScanRequest = serde_json::from_str(input).expect("the schedule input");
        assert!(matches!(request.scan, ScanKind::RightsExpiry));
        assert!(serde_json::from_str::<ScanRequest>(r#"{"scan":"everything"}"#).is_err());
    }
}
