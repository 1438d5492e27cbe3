//! `operator-page`: the operator page of a stack, behind the operator API. Three static files
//! (`GET /operator`, `/operator/page.js`, `/operator/page.css`: nothing in them is data, so the
//! template routes them without the authorizer) and the read-only summary they show,
//! `GET /operator/api/summary?from=YYYY-MM-DD&to=YYYY-MM-DD&flow=<flow>`, which API Gateway's
//! JWT authorizer guards (401 before this function runs). The summary: messages sent in the range
//! per flow by delivery state, the sharing audit of the range (who shared what with whom, sent,
//! delivered, read), every dead-letter queue's depth, the last rights-expiry scan and the DAM
//! poll's watermark.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use serde::Serialize;
use shared::adapters::operations::{DeadLetters, OperationsReader, Scans};
use shared::adapters::sharing_audit::DynamoSharingAudit;
use shared::config::{ConfigError, Env};
use shared::domain::operations::{self, FilterError, FlowDeliveries};
use shared::domain::outbound::MessageFlow;
use shared::domain::sharing::AuditRecord;
use shared::lambda::http::{self, method};
use shared::ports::{SharingAudit, StoreError};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The page's content security policy: its own files only, its own API only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SENT_MESSAGES_TABLE`.
    pub sent_messages_table: String,
    /// `EXPIRY_ALERTS_TABLE`.
    pub expiry_alerts_table: String,
    /// `ASSET_STATE_TABLE`.
    pub asset_state_table: String,
    /// `STACK_NAME`: the prefix of the stack's queues.
    pub stack: String,
    /// `SHARING_AUDIT_TABLE`.
    pub sharing_audit_table: String,
}

impl Config {
    /// Reads the settings from any variable source, naming every missing one.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let config = Self {
            sent_messages_table: env.required("SENT_MESSAGES_TABLE"),
            expiry_alerts_table: env.required("EXPIRY_ALERTS_TABLE"),
            asset_state_table: env.required("ASSET_STATE_TABLE"),
            stack: env.required("STACK_NAME"),
            sharing_audit_table: env.required("SHARING_AUDIT_TABLE"),
        };
        env.finish()?;
        Ok(config)
    }
}

/// What `GET /operator/api/summary` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// First day shown (UTC).
    pub from: String,
    /// Last day shown (UTC).
    pub to: String,
    /// The flow filter (`all` when none).
    pub flow: &'static str,
    /// Messages sent in the range per flow, by latest delivery state.
    pub deliveries: Vec<FlowDeliveries>,
    /// The shares asked for in the range (shown for every flow and for `sharing`), newest first.
    pub sharing: Vec<AuditRecord>,
    /// Every dead-letter queue and its depth.
    pub dead_letters: Vec<DeadLetters>,
    /// The last scans.
    pub scans: Scans,
}

/// Why a summary could not be given.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// A filter the page cannot use (400, with the reason).
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// DynamoDB or SQS failed (503 when retrying may help).
    #[error("the stack's records could not be read")]
    Store(#[from] StoreError),
}

/// What the page reads.
#[derive(Debug)]
pub struct Deps<A = DynamoSharingAudit> {
    /// The stack's records.
    pub reader: OperationsReader,
    /// The sharing audit.
    pub audit: A,
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda(pub Deps);

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "operator-page";
    type Event = ApiGatewayV2httpRequest;
    type Response = ApiGatewayV2httpResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Ok(Self(Deps {
            audit: DynamoSharingAudit::new(dynamodb.clone(), config.sharing_audit_table),
            reader: OperationsReader {
                dynamodb,
                sqs: aws_sdk_sqs::Client::new(aws),
                sent_messages_table: config.sent_messages_table,
                expiry_alerts_table: config.expiry_alerts_table,
                asset_state_table: config.asset_state_table,
                stack: config.stack,
            },
        }))
    }

    async fn handle(
        &self,
        request: ApiGatewayV2httpRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<ApiGatewayV2httpResponse, Self::Error> {
        Ok(handle(
            &self.0,
            &request,
            jiff::Timestamp::now()
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date(),
        )
        .await)
    }
}

fn with_headers(
    mut response: ApiGatewayV2httpResponse,
    content_type: &'static str,
) -> ApiGatewayV2httpResponse {
    let headers = &mut response.headers;
    headers.insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        ::http::header::CACHE_CONTROL,
        ::http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        ::http::header::CONTENT_SECURITY_POLICY,
        ::http::HeaderValue::from_static(CSP),
    );
    headers.insert(
        ::http::header::X_CONTENT_TYPE_OPTIONS,
        ::http::HeaderValue::from_static("nosniff"),
    );
    response
}

fn file(body: &'static str, content_type: &'static str) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 200;
    response.body = Some(Body::Text(body.to_owned()));
    with_headers(response, content_type)
}

fn json(status: u16, body: &impl Serialize) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    with_headers(http::text(status, text), "application/json")
}

/// Answers one request: a static file, the summary, 400 with the reason for a bad filter, 404 /
/// 405 elsewhere, 503 when the stack's records cannot be read.
pub async fn handle<A: SharingAudit>(
    deps: &Deps<A>,
    request: &ApiGatewayV2httpRequest,
    today: jiff::civil::Date,
) -> ApiGatewayV2httpResponse {
    let path = request.raw_path.as_deref().unwrap_or("/");
    let known = matches!(
        path,
        "/operator" | "/operator/page.js" | "/operator/page.css" | "/operator/api/summary"
    );
    if !known {
        return http::text(404, "Not Found");
    }
    if method(request) != "GET" {
        return http::text(405, "Method Not Allowed");
    }
    match path {
        "/operator" => file(PAGE, "text/html; charset=utf-8"),
        "/operator/page.js" => file(SCRIPT, "text/javascript; charset=utf-8"),
        "/operator/page.css" => file(STYLE, "text/css; charset=utf-8"),
        _ => match summary(deps, request, today).await {
            Ok(summary) => json(200, &summary),
            Err(SummaryError::Filter(reason)) => {
                tracing::warn!(%reason, "operator summary: a filter was refused");
                json(400, &serde_json::json!({ "error": reason.to_string() }))
            }
            Err(error @ SummaryError::Store(_)) => {
                let mut answer = http::failure(503, "Service Unavailable", &error);
                answer.headers.insert(
                    ::http::header::RETRY_AFTER,
                    ::http::HeaderValue::from_static("5"),
                );
                answer
            }
        },
    }
}

/// The summary the query asks for.
pub async fn summary<A: SharingAudit>(
    deps: &Deps<A>,
    request: &ApiGatewayV2httpRequest,
    today: jiff::civil::Date,
) -> Result<Summary, SummaryError> {
    let query = &request.query_string_parameters;
    let range = operations::parse_range(query.first("from"), query.first("to"), today)?;
    let flow = operations::parse_flow(query.first("flow"))?;
    let reader = &deps.reader;
    let deliveries = operations::tally(reader.deliveries(&range, flow).await?);
    let mut sharing = match flow {
        None | Some(MessageFlow::Sharing) => {
            deps.audit
                .between(&range.from.to_string(), &range.to.to_string())
                .await?
        }
        Some(_) => Vec::new(),
    };
    sharing.sort_by_key(|r| std::cmp::Reverse(r.requested_at_ms));
    tracing::info!(
        from = %range.from,
        to = %range.to,
        flows = deliveries.len(),
        "operator summary read"
    );
    Ok(Summary {
        from: range.from.to_string(),
        to: range.to.to_string(),
        flow: flow.map_or("all", operations::flow_name),
        deliveries,
        sharing,
        dead_letters: reader.dead_letters().await?,
        scans: reader.scans().await?,
    })
}
