//! `share-approved-asset` (flow 5): consumes `Sharing.fifo` (a rep's `share … to …` on a sharing
//! number, and their pick from a list; partial batch responses) and serves `POST /share` of the
//! operator API behind its JWT authorizer (the rep is the token's `phone_number` claim, looked up
//! in the directory). The flow is `shared::flows::share_asset`; docs/sharing.md tells the story.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::{Deserialize, Serialize};
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::adapters::dynamodb::DynamoIdempotencyStore;
use shared::adapters::orange_logic::connect::{self, ConnectError, OrangeLogicLocation};
use shared::adapters::sharing_audit::DynamoSharingAudit;
use shared::adapters::sqs_json::{SqsJsonQueue, SqsOutboundQueue};
use shared::adapters::sqs_records::SqsRecordQueues;
use shared::config::{ConfigError, Env};
use shared::connector_config::{ConnectorConfigError, ConnectorConfigLocation, Purpose};
use shared::domain::outbound::FlowQueueMessage;
use shared::error::Retryable;
use shared::flows::share_asset::{Handled, ShareError, ShareFlow, ShareRequest, ShareSettings};
use shared::lambda::sqs_batch::{BatchPolicy, RecordQueues, process_records};
use shared::ports::{
    ContactDirectory, ConversationStore, IdempotencyStore, OutboundQueue, SharingAudit,
};
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use std::time::Duration;
use tokio::time::Instant;

/// The claim naming the rep: their WhatsApp number, as the directory holds it.
pub const REP_CLAIM: &str = "phone_number";

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sharing audit.
    pub sharing_audit_table: String,
    /// The contact directory.
    pub contacts_table: String,
    /// Conversation state (a list's pending recipient).
    pub conversations_table: String,
    /// Per-asset comment leases, shared with the other DAM comment writers.
    pub comment_leases_table: String,
    /// `outbound.fifo`.
    pub outbound_queue_url: String,
    /// The dead-letter queue of `Sharing.fifo`.
    pub dead_letter_queue_url: String,
    /// The DAM.
    pub orange_logic: OrangeLogicLocation,
    /// Where the connector configuration is.
    pub connector_config: ConnectorConfigLocation,
    /// Where the secrets are.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Same as reading the environment, over any variable source; every missing one is named.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let sharing_audit_table = env.required("SHARING_AUDIT_TABLE");
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
            sharing_audit_table,
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
    D = DynamoContactDirectory,
    C = DynamoConversationStore,
    A = DynamoSharingAudit,
    O = SqsOutboundQueue,
    L = DynamoIdempotencyStore,
> = ShareFlow<D, C, A, O, L>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Secrets unavailable.
    #[error("share-approved-asset cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// Connector configuration unavailable or invalid.
    #[error("share-approved-asset cannot load the connector configuration")]
    ConnectorConfig(#[from] ConnectorConfigError),
    /// The Orange Logic client could not be made.
    #[error("share-approved-asset cannot reach Orange Logic")]
    OrangeLogic(#[from] ConnectError),
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda {
    /// The flow.
    pub flow: Deps,
    /// The dead-letter queue and the source queue of `Sharing.fifo` records.
    pub records: SqsRecordQueues,
    /// The number API shares are sent from (the first with the `sharing` purpose).
    pub api_number: Option<String>,
}

/// What invokes the function: its queue or its API route.
#[derive(Debug)]
pub enum Event {
    /// `Sharing.fifo` records.
    Sqs(SqsEvent),
    /// `POST /share`.
    Http(Box<ApiGatewayV2httpRequest>),
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<De: serde::Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        // An SQS event is the one with `Records`; told apart before parsing, because most of
        // an HTTP API event's fields are optional.
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            serde_json::from_value(value)
                .map(Event::Sqs)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(|r| Event::Http(Box::new(r)))
                .map_err(serde::de::Error::custom)
        }
    }
}

/// The answer to either kind of invocation.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// Only the failed records.
    Sqs(SqsBatchResponse),
    /// The API's answer.
    Http(Box<ApiGatewayV2httpResponse>),
}

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "share-approved-asset";
    type Event = Event;
    type Response = Response;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let secrets = config.secrets.load(aws).await.map_err(StartError::from)?;
        let connector = config
            .connector_config
            .load(aws)
            .await
            .map_err(StartError::from)?;
        let dam = connect::client(&config.orange_logic, &secrets, &connector)
            .map_err(StartError::from)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let flow = ShareFlow {
            directory: DynamoContactDirectory::new(dynamodb.clone(), &config.contacts_table),
            conversations: DynamoConversationStore::new(
                dynamodb.clone(),
                &config.conversations_table,
            ),
            audit: DynamoSharingAudit::new(dynamodb.clone(), &config.sharing_audit_table),
            outbound: SqsOutboundQueue(SqsJsonQueue::new(sqs.clone(), &config.outbound_queue_url)),
            leases: DynamoIdempotencyStore::new(dynamodb, &config.comment_leases_table),
            dam,
            pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
            settings: ShareSettings::from_config(&connector),
        };
        let api_number = connector
            .number_for(Purpose::Sharing)
            .map(|n| n.phone_number_id.clone());
        let records = SqsRecordQueues::new(sqs, &config.dead_letter_queue_url, Self::NAME);
        Ok(Self {
            flow,
            records,
            api_number,
        })
    }

    async fn handle(&self, event: Event, deadline: Instant) -> Result<Response, Self::Error> {
        Ok(match event {
            Event::Sqs(event) => {
                Response::Sqs(handle_batch(&self.flow, &self.records, event, deadline).await)
            }
            Event::Http(request) => Response::Http(Box::new(
                handle_api(&self.flow, self.api_number.as_deref(), &request).await,
            )),
        })
    }
}

/// One record that could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is not a routed message: it will never be.
    #[error("the record is not a routed message")]
    Malformed(#[source] serde_json::Error),
    /// The flow failed.
    #[error(transparent)]
    Share(#[from] ShareError),
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Share(e) => e.is_retryable(),
        }
    }
}

/// The most one record may take: a search, a read, a link, a comment under a lease that may
/// have to wait, the table writes and the queue sends.
pub const RECORD_WORST_CASE: Duration = Duration::from_secs(40);

/// Handles the records of a `Sharing.fifo` batch within the invocation's time.
pub async fn handle_batch<D, C, A, O, L, Q>(
    flow: &Deps<D, C, A, O, L>,
    records: &Q,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse
where
    D: ContactDirectory,
    C: ConversationStore,
    A: SharingAudit,
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

async fn handle_record<D, C, A, O, L>(
    flow: &Deps<D, C, A, O, L>,
    record: SqsMessage,
) -> Result<(), RecordError>
where
    D: ContactDirectory,
    C: ConversationStore,
    A: SharingAudit,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    let message = FlowQueueMessage::parse(record.body.as_deref().unwrap_or(""))
        .map_err(RecordError::Malformed)?;
    let handled = flow.handle(&message).await?;
    tracing::info!(outcome = ?handled, "sharing queue message handled");
    Ok(())
}

/// The body of `POST /share`: the same request as the WhatsApp command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiShare {
    /// An asset id or words.
    pub asset: String,
    /// The recipient's number.
    pub to: String,
    /// Repeating a request with the same key shares once.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn json(status: u16, body: serde_json::Value) -> ApiGatewayV2httpResponse {
    let mut response = shared::lambda::http::text(status, body.to_string());
    response.headers.insert(
        "content-type",
        "application/json".parse().expect("a valid header value"),
    );
    response
}

/// `POST /share` after the authorizer: the rep from the token's claim, the share, and the
/// answer as JSON (200 shared, 422 refused with the rule, 400 a bad body, 401 no rep claim).
pub async fn handle_api<D, C, A, O, L>(
    flow: &Deps<D, C, A, O, L>,
    number: Option<&str>,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse
where
    D: ContactDirectory,
    C: ConversationStore,
    A: SharingAudit,
    O: OutboundQueue,
    L: IdempotencyStore,
{
    let claim = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|j| j.claims.get(REP_CLAIM))
        .filter(|c| !c.trim().is_empty());
    // API Gateway's authorizer already refused requests without a valid token; a token
    // without the claim names nobody.
    let Some(claim) = claim else {
        return json(401, serde_json::json!({"message": "Unauthorized"}));
    };
    let Some(number) = number else {
        tracing::error!("no business number has the sharing purpose");
        return json(
            503,
            serde_json::json!({"message": "sharing is not configured"}),
        );
    };
    let body = match shared::lambda::http::raw_body(request) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(error = %shared::error::chain(&error), "a share request body that cannot be read");
            return json(
                400,
                serde_json::json!({"message": "the body cannot be read"}),
            );
        }
    };
    let share: ApiShare = match serde_json::from_slice(&body) {
        Ok(share) => share,
        Err(error) => {
            // Only where and what kind: serde's message may quote the body (a phone number).
            tracing::warn!(
                category = ?error.classify(),
                line = error.line(),
                column = error.column(),
                "a share request body that is not the documented JSON"
            );
            return json(
                400,
                serde_json::json!({"message": "expected {\"asset\": \"<id or words>\", \"to\": \"<number>\"}"}),
            );
        }
    };
    let at_ms = request.request_context.time_epoch;
    let request_id = share
        .idempotency_key
        .clone()
        .or_else(|| request.request_context.request_id.clone())
        .unwrap_or_else(|| format!("api-{at_ms}"))
        .replace(['|', '#'], "-");
    let share_request = ShareRequest {
        rep: flow.pseudonyms.pseudonym(claim),
        reply: None,
        request_id: format!("api:{request_id}"),
        number: number.to_owned(),
        at_ms,
    };
    let text = format!("share {} to {}", share.asset.trim(), share.to.trim());
    match flow.command(&share_request, &text).await {
        Ok(answer) => {
            let (status, outcome) = match &answer.handled {
                Handled::Shared => (200, "shared".to_owned()),
                Handled::AlreadyShared => (200, "already_shared".to_owned()),
                Handled::Choices(_) => (409, "several_match".to_owned()),
                Handled::Refused("not_a_rep") => (403, "not_a_rep".to_owned()),
                Handled::Refused(code) => (422, (*code).to_owned()),
                Handled::Ignored(why) => (400, (*why).to_owned()),
            };
            json(
                status,
                serde_json::json!({"outcome": outcome, "message": answer.text}),
            )
        }
        Err(error) => {
            let status = if error.is_retryable() { 503 } else { 500 };
            tracing::error!(status, error = %shared::error::chain(&error), "a share request failed");
            json(
                status,
                serde_json::json!({"message": "the share could not be made; try again"}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        for name in [
            "SHARING_AUDIT_TABLE",
            "CONTACTS_TABLE",
            "CONVERSATIONS_TABLE",
            "COMMENT_LEASES_TABLE",
            "OUTBOUND_QUEUE_URL",
            "DEAD_LETTER_QUEUE_URL",
            "ORANGE_LOGIC_BASE_URL",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn an_sqs_event_and_an_http_event_are_told_apart() {
        let sqs: Event = serde_json::from_str(r#"{"Records":[]}"#).expect("sqs");
        assert!(matches!(sqs, Event::Sqs(_)));
        let http: Event = serde_json::from_value(
            serde_json::to_value(ApiGatewayV2httpRequest::default()).expect("json"),
        )
        .expect("http");
        assert!(matches!(http, Event::Http(_)));
    }
}
