//! `dam-webhook`: Orange Logic's webhook callback behind the HTTP API (payload v2). A POST is
//! authenticated by its shared-secret header (constant time), split and enqueued on `dam-events`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::adapters::sqs_json::{SqsDamEventQueue, SqsJsonQueue};
use shared::config::{ConfigError, Env};
use shared::domain::dam::RejectedEvent;
use shared::error::{Retryable, chain};
use shared::flows::dam_webhook::{DamAcceptError, DamWebhookEdge};
use shared::lambda::http::{self, body_len, header, method, raw_body};
use shared::ports::DamEventQueue;
use shared::secrets::{SecretsError, SecretsLocation};

/// Largest body accepted; a batch of asset events is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The header carrying the shared secret unless `DAM_WEBHOOK_SECRET_HEADER` names another.
pub const DEFAULT_SECRET_HEADER: &str = "x-dam-webhook-secret";

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// URL of the `dam-events` queue.
    pub dam_events_queue_url: String,
    /// Header the DAM's automation puts the shared secret in.
    pub secret_header: String,
    /// Where the secrets document is.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads `DAM_EVENTS_QUEUE_URL`, optional `DAM_WEBHOOK_SECRET_HEADER` and the secrets location.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any variable source.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let dam_events_queue_url = env.required("DAM_EVENTS_QUEUE_URL");
        let secret_header = env
            .optional("DAM_WEBHOOK_SECRET_HEADER")
            .unwrap_or_else(|| DEFAULT_SECRET_HEADER.to_owned())
            .to_ascii_lowercase();
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            dam_events_queue_url,
            secret_header,
            secrets,
        })
    }
}

/// The function's dependencies.
#[derive(Debug)]
pub struct Deps<Q = SqsDamEventQueue> {
    /// The edge flow.
    pub edge: DamWebhookEdge<Q>,
    /// The secret header's name (lower case).
    pub secret_header: String,
}

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The secrets could not be loaded.
    #[error("dam-webhook cannot load its secrets")]
    Secrets(#[from] SecretsError),
    /// The secrets document has no usable `dam_webhook_secret`.
    #[error("dam-webhook needs a non-empty `dam_webhook_secret` in the connector secrets")]
    NoWebhookSecret,
}

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    let secret = secrets
        .dam_webhook_secret
        .filter(|s| !s.expose().is_empty())
        .ok_or(StartError::NoWebhookSecret)?;
    Ok(Deps {
        edge: DamWebhookEdge {
            secret,
            queue: SqsDamEventQueue(SqsJsonQueue::new(
                aws_sdk_sqs::Client::new(aws),
                &config.dam_events_queue_url,
            )),
        },
        secret_header: config.secret_header.clone(),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda(pub Deps);

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "dam-webhook";
    type Event = ApiGatewayV2httpRequest;
    type Response = ApiGatewayV2httpResponse;
    type Error = std::convert::Infallible;

    async fn start(
        lookup: shared::lambda::function::Lookup<'_>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self, shared::lambda::function::StartError> {
        let config = Config::from_lookup(lookup)?;
        Ok(Self(connect(&config, aws).await?))
    }

    async fn handle(
        &self,
        request: ApiGatewayV2httpRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<ApiGatewayV2httpResponse, Self::Error> {
        handle(&self.0, request).await
    }
}

/// Translates one API Gateway request into the edge flow and its outcome into a response:
/// 200 with `{"enqueued","ignored","rejected":[{"index","reason"}]}` when every valid event is
/// enqueued (some may be rejected), 400 with the same body when events were sent and none was
/// valid, 400 for a body that is not the documented JSON, 401 for a wrong secret, 503 / 500 when
/// the queue failed (the DAM retries; already enqueued events are deduplicated downstream).
pub async fn handle<Q: DamEventQueue>(
    deps: &Deps<Q>,
    request: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse, std::convert::Infallible> {
    if method(&request) != "POST" {
        return Ok(http::text(405, "Method Not Allowed"));
    }
    if body_len(&request) > MAX_BODY_BYTES {
        tracing::warn!(bytes = body_len(&request), "DAM webhook body too large");
        return Ok(http::text(413, "Payload Too Large"));
    }
    let body = match raw_body(&request) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(error = %chain(&error), "DAM webhook body refused");
            return Ok(http::text(400, "Bad Request"));
        }
    };
    let presented = header(&request, &deps.secret_header);
    Ok(match deps.edge.accept(presented, &body).await {
        Ok(accepted) => answer(
            200,
            accepted.enqueued,
            accepted.ignored.len(),
            &accepted.rejected,
        ),
        Err(DamAcceptError::NothingValid(rejected)) => {
            tracing::warn!(
                status = 400,
                rejected = rejected.len(),
                "DAM webhook refused: no event was valid"
            );
            answer(400, 0, 0, &rejected)
        }
        Err(error) => {
            let (status, answer) = match &error {
                DamAcceptError::NothingValid(_) | DamAcceptError::Body(_) => (400, "Bad Request"),
                DamAcceptError::Unauthenticated => (401, "Unauthorized"),
                // The DAM retries up to five times: ask for it only when it can help.
                DamAcceptError::Queue(queue) if queue.is_retryable() => {
                    (503, "Service Unavailable")
                }
                DamAcceptError::Queue(_) => (500, "Internal Server Error"),
            };
            http::failure(status, answer, &error)
        }
    })
}

/// The JSON answer telling the DAM what became of each event.
fn answer(
    status: u16,
    enqueued: usize,
    ignored: usize,
    rejected: &[RejectedEvent],
) -> ApiGatewayV2httpResponse {
    let rejected: Vec<serde_json::Value> = rejected
        .iter()
        .map(|r| serde_json::json!({ "index": r.index, "reason": r.problem.as_str() }))
        .collect();
    let body =
        serde_json::json!({ "enqueued": enqueued, "ignored": ignored, "rejected": rejected });
    let mut response = http::text(status, body.to_string());
    response.headers.insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::secrets::ConnectorSecrets;
    use shared::testing::InMemoryDamEventQueue;

    fn deps() -> Deps<InMemoryDamEventQueue> {
        let secrets = ConnectorSecrets::from_json(include_str!("../../../local/secrets.json"))
            .expect("local secrets");
        Deps {
            edge: DamWebhookEdge {
                secret: secrets.dam_webhook_secret.expect("dam secret"),
                queue: InMemoryDamEventQueue::default(),
            },
            secret_header: DEFAULT_SECRET_HEADER.into(),
        }
    }

    fn event(json: &str) -> ApiGatewayV2httpRequest {
        serde_json::from_str(json).expect("a valid API Gateway v2 event")
    }

    async fn call(deps: &Deps<InMemoryDamEventQueue>, request: ApiGatewayV2httpRequest) -> i64 {
        answered(deps, request).await.0
    }

    async fn answered(
        deps: &Deps<InMemoryDamEventQueue>,
        request: ApiGatewayV2httpRequest,
    ) -> (i64, serde_json::Value) {
        let response = handle(deps, request)
            .await
            .unwrap_or_else(|never| match never {});
        let body = match response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            }
            _ => serde_json::Value::Null,
        };
        (response.status_code, body)
    }

    #[tokio::test]
    async fn asset_events_with_the_right_secret_are_enqueued_and_other_topics_ignored() {
        let deps = deps();
        let status = call(
            &deps,
            event(include_str!(
                "../../../events/dam-webhook/asset-events.json"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            deps.edge.queue.event_ids(),
            ["evt-7f3a9c01", "evt-7f3a9c02"]
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_is_unauthorized_and_enqueues_nothing() {
        let deps = deps();
        let status = call(
            &deps,
            event(include_str!("../../../events/dam-webhook/bad-secret.json")),
        )
        .await;
        assert_eq!(status, 401);
        assert!(deps.edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn a_missing_secret_header_is_unauthorized() {
        let deps = deps();
        let mut request = event(include_str!(
            "../../../events/dam-webhook/asset-events.json"
        ));
        request.headers.remove(DEFAULT_SECRET_HEADER);
        assert_eq!(call(&deps, request).await, 401);
        assert!(deps.edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn a_body_whose_only_event_has_an_invalid_record_id_is_a_bad_request_naming_it() {
        let deps = deps();
        let (status, body) = answered(
            &deps,
            event(include_str!(
                "../../../events/dam-webhook/bad-record-id.json"
            )),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["rejected"][0]["index"], 0);
        assert_eq!(
            body["rejected"][0]["reason"],
            "recordId is not a valid record id"
        );
        assert!(deps.edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn four_good_events_are_enqueued_and_the_numeric_occurred_at_one_reported_by_index() {
        let deps = deps();
        let (status, body) = answered(
            &deps,
            event(include_str!(
                "../../../events/dam-webhook/one-bad-event.json"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            deps.edge.queue.event_ids(),
            [
                "evt-91c0a001",
                "evt-91c0a002",
                "evt-91c0a003",
                "evt-91c0a005"
            ]
        );
        assert_eq!(body["enqueued"], 4);
        assert_eq!(
            body["rejected"],
            serde_json::json!([{"index": 3, "reason": "occurredAt is neither a date string nor epoch seconds or milliseconds"}])
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_the_documented_json_is_a_bad_request() {
        let deps = deps();
        let mut request = event(include_str!(
            "../../../events/dam-webhook/asset-events.json"
        ));
        for body in ["not json", "[]", r#"{"events":"e1"}"#] {
            request.body = Some(body.into());
            assert_eq!(call(&deps, request.clone()).await, 400, "{body}");
        }
        assert!(deps.edge.queue.event_ids().is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_asks_the_dam_to_retry() {
        let deps = deps();
        deps.edge.queue.fail_next(1);
        let status = call(
            &deps,
            event(include_str!(
                "../../../events/dam-webhook/asset-events.json"
            )),
        )
        .await;
        assert_eq!(status, 503);
    }

    #[tokio::test]
    async fn an_oversized_body_and_other_methods_are_refused() {
        let deps = deps();
        let mut request = event(include_str!(
            "../../../events/dam-webhook/asset-events.json"
        ));
        request.body = Some("x".repeat(MAX_BODY_BYTES + 1));
        assert_eq!(call(&deps, request).await, 413);
        let mut request = event(include_str!(
            "../../../events/dam-webhook/asset-events.json"
        ));
        request.request_context.http.method = ::http::Method::GET;
        assert_eq!(call(&deps, request).await, 405);
    }

    #[test]
    fn a_missing_queue_url_is_named() {
        let err = Config::from_lookup(|_| None).expect_err("missing");
        assert!(err.to_string().contains("DAM_EVENTS_QUEUE_URL"), "{err}");
    }
}
