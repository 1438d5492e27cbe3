//! `ingest-field-media`: consumes `field-ingest.fifo` (field media, location pins and `project`
//! commands routed by route-inbound) and the receipts' delay queue (partial batch responses on
//! both). See `shared::flows::field_ingest` and docs/field-ingest.md.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::directory::DynamoContactDirectory;
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::field_ingest_store::DynamoFieldIngestStore;
use shared::adapters::orange_logic::{
    Auth, OrangeLogicClient, OrangeLogicError, Settings, TOKEN_PATH,
};
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::adapters::staging::S3Staging;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation, DamConcept};
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::field_ingest::{
    FieldIngest, IngestError, IngestSettings, ReceiptDue, ReceiptQueue,
};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{ContactDirectory, IdempotencyStore, OutboundQueue};
use shared::secrets::{SecretsError, SecretsLocation};
use shared::whatsapp::client::{GraphApiConfig, WhatsAppClient};
use shared::whatsapp::errors::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Claims on wamids.
    pub claims_table: String,
    /// Progress, bursts and location pins.
    pub ingest_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The receipts' delay queue.
    pub receipts_queue_url: String,
    /// Its dead-letter queue.
    pub receipts_dead_letter_queue_url: String,
    /// The dead-letter queue of `field-ingest.fifo`.
    pub dead_letter_queue_url: String,
    /// The staging bucket.
    pub staging_bucket: String,
    /// `https://customer.orangelogic.com`.
    pub orange_logic_base_url: String,
    /// `client_credentials` (with the client id) or `bearer`.
    pub orange_logic_bearer: bool,
    /// OAuth client id.
    pub orange_logic_client_id: String,
    /// Graph's host and version.
    pub graph: GraphApiConfig,
    /// `MALWARE_SCANNING=enabled`: upload only objects GuardDuty tagged clean.
    pub malware_scan: bool,
    /// `MALWARE_SCAN_WAIT_SECONDS`: how long to wait for the verdict before failing closed.
    pub scan_wait: Duration,
    /// `RECEIPT_WINDOW_SECONDS`: media filed within it share one receipt.
    pub receipt_window: Duration,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads the variables of `lookup`, reporting every missing one at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let claims_table = env.required("FIELD_INGEST_CLAIMS_TABLE");
        let ingest_table = env.required("FIELD_INGEST_TABLE");
        let contacts_table = env.required("CONTACTS_TABLE");
        let outbound_queue_url = env.required("OUTBOUND_QUEUE_URL");
        let receipts_queue_url = env.required("RECEIPTS_QUEUE_URL");
        let receipts_dead_letter_queue_url = env.required("RECEIPTS_DEAD_LETTER_QUEUE_URL");
        let dead_letter_queue_url = env.required("DEAD_LETTER_QUEUE_URL");
        let staging_bucket = env.required("MEDIA_STAGING_BUCKET");
        let orange_logic_base_url = env.required("ORANGE_LOGIC_BASE_URL");
        let orange_logic_bearer = match env.optional("ORANGE_LOGIC_AUTH").as_deref() {
            None | Some("client_credentials") => false,
            Some("bearer") => true,
            Some(other) => {
                env.invalid(
                    "ORANGE_LOGIC_AUTH",
                    format!("{other:?} is neither client_credentials nor bearer"),
                );
                false
            }
        };
        let orange_logic_client_id = if orange_logic_bearer {
            String::new()
        } else {
            env.required("ORANGE_LOGIC_CLIENT_ID")
        };
        let mut graph = GraphApiConfig::meta(String::new());
        if let Some(base_url) = env.optional("WHATSAPP_GRAPH_BASE_URL") {
            graph.base_url = base_url.trim_end_matches('/').to_owned();
        }
        if let Some(version) = env.optional("WHATSAPP_GRAPH_VERSION") {
            graph.version = version;
        }
        graph.timeout = Duration::from_millis(env.parsed_or("WHATSAPP_GRAPH_TIMEOUT_MS", 60_000));
        let malware_scan = match env.optional("MALWARE_SCANNING").as_deref() {
            None | Some("disabled") => false,
            Some("enabled") => true,
            Some(other) => {
                env.invalid(
                    "MALWARE_SCANNING",
                    format!("{other:?} is neither enabled nor disabled"),
                );
                false
            }
        };
        let scan_wait = Duration::from_secs(env.parsed_or("MALWARE_SCAN_WAIT_SECONDS", 60));
        let receipt_window = Duration::from_secs(env.parsed_or("RECEIPT_WINDOW_SECONDS", 20));
        let connector_config = ConnectorConfigLocation::from_env(&mut env);
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            claims_table,
            ingest_table,
            contacts_table,
            outbound_queue_url,
            receipts_queue_url,
            receipts_dead_letter_queue_url,
            dead_letter_queue_url,
            staging_bucket,
            orange_logic_base_url,
            orange_logic_bearer,
            orange_logic_client_id,
            graph,
            malware_scan,
            scan_wait,
            receipt_window,
            connector_config,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<I = DynamoIdempotencyStore, D = DynamoContactDirectory, O = SqsOutboundQueue> =
    FieldIngest<I, D, O>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("ingest-field-media cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("ingest-field-media cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// A secret is missing.
    #[error("ingest-field-media needs `{0}` in the connector secrets")]
    MissingSecret(&'static str),
    /// The Graph client could not be built.
    #[error("ingest-field-media cannot build the Graph client")]
    Graph(#[from] ApiError),
    /// The DAM client could not be built.
    #[error("ingest-field-media cannot build the Orange Logic client")]
    Dam(#[from] OrangeLogicError),
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let connector = config.connector_config.load(aws).await?;
    let token = secrets
        .whatsapp_access_token
        .filter(|t| !t.expose().is_empty())
        .ok_or(StartError::MissingSecret("whatsapp_access_token"))?;
    let dam_secret = secrets
        .orange_logic_client_secret
        .filter(|s| !s.expose().is_empty())
        .ok_or(StartError::MissingSecret("orange_logic_client_secret"))?;
    let auth = if config.orange_logic_bearer {
        Auth::StaticBearer(dam_secret)
    } else {
        Auth::ClientCredentials {
            token_path: TOKEN_PATH.into(),
            client_id: config.orange_logic_client_id.clone(),
            client_secret: dam_secret,
        }
    };
    let dam = OrangeLogicClient::new(
        Settings::new(&config.orange_logic_base_url, auth).with_dam(&connector.dam),
    )?;
    let mut settings = IngestSettings::new(
        connector.routing.field_ingest.clone(),
        connector.dam.ingest_fields.clone(),
    );
    if let Some(field) = connector.dam.field_map.get(&DamConcept::ProjectTag) {
        settings.project_field.clone_from(field);
    }
    if let Some(field) = connector.dam.field_map.get(&DamConcept::Status) {
        settings.status_field.clone_from(field);
    }
    settings.malware_scan = config.malware_scan;
    settings.scan_wait = config.scan_wait;
    settings.receipt_window = config.receipt_window;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    Ok(FieldIngest {
        claims: DynamoIdempotencyStore::new(dynamodb.clone(), &config.claims_table),
        directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
        outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs.clone(), &config.outbound_queue_url)),
        store: DynamoFieldIngestStore::new(dynamodb, &config.ingest_table),
        staging: S3Staging::new(aws, &config.staging_bucket),
        graph: WhatsAppClient::new(config.graph.clone(), token)?,
        dam: Arc::new(dam),
        receipts: ReceiptQueue::new(sqs, &config.receipts_queue_url),
        settings,
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue of `field-ingest.fifo` records.
    pub records: SqsRecordQueues,
    /// The dead-letter queue of receipt records.
    pub receipt_records: SqsRecordQueues,
    /// The receipts queue's name (the last part of its URL and ARN).
    pub receipts_queue_name: String,
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "ingest-field-media";
    type Event = SqsEvent;
    type Response = SqsBatchResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let flow = connect(&config, aws).await?;
        let sqs = aws_sdk_sqs::Client::new(aws);
        Ok(Self {
            flow,
            records: SqsRecordQueues::new(sqs.clone(), &config.dead_letter_queue_url, Self::NAME),
            receipt_records: SqsRecordQueues::new(
                sqs,
                &config.receipts_dead_letter_queue_url,
                Self::NAME,
            ),
            receipts_queue_name: queue_name(&config.receipts_queue_url).to_owned(),
        })
    }

    async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, Self::Error> {
        // Lambda never mixes event sources in one invocation.
        let from_receipts = event.records.first().is_some_and(|r| {
            r.event_source_arn
                .as_deref()
                .is_some_and(|arn| queue_name(arn) == self.receipts_queue_name)
        });
        Ok(if from_receipts {
            handle_receipts(&self.flow, &self.receipt_records, event, deadline).await
        } else {
            handle_batch(&self.flow, &self.records, event, deadline).await
        })
    }
}

fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a routed message or a receipt: it never will be.
    #[error("the record is not a field-ingest message")]
    Malformed(#[source] Option<serde_json::Error>),
    /// The flow failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Ingest(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: a 100 MB download into S3 and the upload back out, each with
/// its retries, plus the scan's wait.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(120);

fn claim_deadline(deadline: Instant) -> i64 {
    let left = deadline.saturating_duration_since(Instant::now());
    time::OffsetDateTime::now_utc().unix_timestamp()
        + i64::try_from(left.as_secs()).unwrap_or(0)
        + 1
}

/// Handles the records of a `field-ingest.fifo` batch within the invocation's time.
pub async fn handle_batch<I, D, O, Q>(
    flow: &Deps<I, D, O>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    I: IdempotencyStore,
    D: ContactDirectory,
    O: OutboundQueue,
    Q: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: RECORD_WORST_CASE.min(
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(Duration::from_secs(3)),
        ),
        ..BatchPolicy::default()
    };
    let claim_deadline = claim_deadline(deadline);
    process_records(
        event,
        deadline,
        &policy,
        records,
        |record: SqsMessage| async move {
            let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
                .map_err(|e| RecordError::Malformed(Some(e)))?;
            match message {
                FlowQueueMessage::Answer(routed) => {
                    flow.handle(&routed, claim_deadline).await?;
                    Ok::<(), RecordError>(())
                }
                // Change detection publishes no events for this flow.
                FlowQueueMessage::Event(_) => Err(RecordError::Malformed(None)),
            }
        },
    )
    .await
}

/// Handles the records of the receipts' delay queue.
pub async fn handle_receipts<I, D, O, Q>(
    flow: &Deps<I, D, O>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    I: IdempotencyStore,
    D: ContactDirectory,
    O: OutboundQueue,
    Q: RecordQueues,
{
    let policy = BatchPolicy {
        record_worst_case: Duration::from_secs(10),
        ..BatchPolicy::default()
    };
    process_records(
        event,
        deadline,
        &policy,
        records,
        |record: SqsMessage| async move {
            let due: ReceiptDue = serde_json::from_str(record.body.as_deref().unwrap_or(""))
                .map_err(|e| RecordError::Malformed(Some(e)))?;
            flow.send_receipt(&due).await?;
            Ok::<(), RecordError>(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "FIELD_INGEST_CLAIMS_TABLE",
            "FIELD_INGEST_TABLE",
            "CONTACTS_TABLE",
            "OUTBOUND_QUEUE_URL",
            "RECEIPTS_QUEUE_URL",
            "RECEIPTS_DEAD_LETTER_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "MEDIA_STAGING_BUCKET",
            "ORANGE_LOGIC_BASE_URL",
            "ORANGE_LOGIC_CLIENT_ID",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn an_unknown_scanning_switch_is_refused_at_cold_start() {
        let err = Config::from_lookup(|name| match name {
            "MALWARE_SCANNING" => Some("sometimes".into()),
            _ => Some("x".into()),
        })
        .expect_err("invalid");
        assert!(err.to_string().contains("MALWARE_SCANNING"), "{err}");
    }

    #[test]
    fn the_receipts_queue_is_recognised_by_its_arn() {
        assert_eq!(
            queue_name("arn:aws:sqs:us-east-1:123456789012:local-FieldReceipts"),
            queue_name("http://127.0.0.1:4566/123456789012/local-FieldReceipts")
        );
    }
}
