//! `whatsapp-webhook`: Meta's callback URL behind an API Gateway HTTP API (payload v2).
//! GET answers the subscription handshake; POST is verified, split and enqueued on `inbound.fifo`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::adapters::sqs::SqsInboundQueue;
use shared::config::{ConfigError, Env};
use shared::error::{Retryable, chain};
use shared::flows::accept_webhook::{AcceptError, SignedPost, WebhookEdge};
use shared::lambda::http::{self, body_len, header, method, raw_body};
use shared::ports::InboundQueue;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::{SecretsError, SecretsLocation};
use shared::whatsapp::handshake::Handshake;
use shared::whatsapp::signature::{AppSecretKeys, LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER};

/// Meta's documented maximum payload; anything larger is not from Meta.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Settings read at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// URL of the `inbound` FIFO queue.
    pub inbound_queue_url: String,
    /// Where the secrets document is.
    pub secrets: SecretsLocation,
}

impl Config {
    /// Reads `INBOUND_QUEUE_URL` and the secrets location, reporting every missing variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any variable source (the local stack passes the template's).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let inbound_queue_url = env.required("INBOUND_QUEUE_URL");
        let secrets = SecretsLocation::from_env(&mut env);
        env.finish()?;
        Ok(Self {
            inbound_queue_url,
            secrets,
        })
    }
}

/// The function's dependencies.
pub type Deps<Q = SqsInboundQueue> = WebhookEdge<Q>;

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
#[error("whatsapp-webhook cannot start")]
pub struct StartError(#[from] SecretsError);

/// Builds the dependencies once per cold start.
pub async fn connect(config: &Config, aws: &aws_config::SdkConfig) -> Result<Deps, StartError> {
    let secrets = config.secrets.load(aws).await?;
    Ok(WebhookEdge {
        app_secrets: AppSecretKeys::new(&secrets.whatsapp_app_secrets),
        verify_token: secrets.whatsapp_verify_token.clone(),
        pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
        queue: SqsInboundQueue::new(aws_sdk_sqs::Client::new(aws), &config.inbound_queue_url),
    })
}

/// The function as Lambda and the local stack start and invoke it.
#[derive(Debug)]
pub struct Lambda(pub Deps);

impl shared::lambda::function::Function for Lambda {
    const NAME: &'static str = "whatsapp-webhook";
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

/// Translates one API Gateway request into the edge flow and its outcome into a response.
/// Never fails: every outcome is an HTTP answer, so Meta sees 5xx only when it must retry.
/// A POST is answered 200 once every valid item is enqueued; elements refused on their own (odd
/// shapes, nested too deep) are logged by path and do not change the answer, since Meta's retry
/// of the same bytes could never make them valid.
pub async fn handle<Q: InboundQueue>(
    deps: &Deps<Q>,
    request: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse, std::convert::Infallible> {
    Ok(match method(&request) {
        "GET" => match deps.handshake(request.raw_query_string.as_deref().unwrap_or("")) {
            Handshake::Verified { challenge } => http::text(200, challenge),
            Handshake::WrongToken => {
                tracing::warn!("webhook handshake with a wrong verify token");
                http::text(403, "Forbidden")
            }
            Handshake::Incomplete => http::text(400, "Bad Request"),
        },
        "POST" => accept(deps, &request).await,
        _ => http::text(405, "Method Not Allowed"),
    })
}

async fn accept<Q: InboundQueue>(
    deps: &Deps<Q>,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    if body_len(request) > MAX_BODY_BYTES {
        tracing::warn!(
            bytes = body_len(request),
            "webhook body over Meta's 3 MB limit"
        );
        return http::text(413, "Payload Too Large");
    }
    let body = match raw_body(request) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(error = %chain(&error), "webhook body refused");
            return http::text(400, "Bad Request");
        }
    };
    let post = SignedPost {
        signature: header(request, SIGNATURE_HEADER),
        legacy_signature: header(request, LEGACY_SIGNATURE_HEADER).is_some(),
        body: &body,
        received_at_ms: request.request_context.time_epoch,
    };
    match deps.accept(post).await {
        Ok(_) => http::text(200, "OK"),
        Err(error) => {
            let (status, answer) = match &error {
                AcceptError::Signature(_) => (401, "Unauthorized"),
                AcceptError::Envelope(_) => (400, "Bad Request"),
                // Meta redelivers on any non-200, for days: ask for it only when it can help.
                AcceptError::Queue(queue) if queue.is_retryable() => (503, "Service Unavailable"),
                AcceptError::Queue(_) => (500, "Internal Server Error"),
            };
            http::failure(status, answer, &error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::secrets::ConnectorSecrets;
    use shared::testing::InMemoryInboundQueue;

    fn deps() -> Deps<InMemoryInboundQueue> {
        let secrets = ConnectorSecrets::from_json(include_str!("../../../local/secrets.json"))
            .expect("local secrets");
        WebhookEdge {
            app_secrets: AppSecretKeys::new(&secrets.whatsapp_app_secrets),
            verify_token: secrets.whatsapp_verify_token.clone(),
            pseudonyms: Pseudonymizer::new(&secrets.pseudonym_key),
            queue: InMemoryInboundQueue::default(),
        }
    }

    fn event(json: &str) -> ApiGatewayV2httpRequest {
        serde_json::from_str(json).expect("a valid API Gateway v2 event")
    }

    async fn call(
        deps: &Deps<InMemoryInboundQueue>,
        request: ApiGatewayV2httpRequest,
    ) -> (i64, String) {
        let response = handle(deps, request)
            .await
            .unwrap_or_else(|never| match never {});
        let body = match response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => text,
            _ => String::new(),
        };
        (response.status_code, body)
    }

    #[test]
    fn a_cold_start_without_settings_names_every_missing_variable() {
        let err = Config::from_lookup(|_| None).expect_err("nothing is set");
        assert_eq!(
            err.to_string(),
            "missing environment variables: INBOUND_QUEUE_URL, CONNECTOR_SECRETS_ARN or CONNECTOR_SECRETS_FILE"
        );
    }

    #[tokio::test]
    async fn the_handshake_with_the_right_token_echoes_the_challenge() {
        let (status, body) = call(
            &deps(),
            event(include_str!(
                "../../../events/whatsapp-webhook/handshake-ok.json"
            )),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "1982364570"));
    }

    #[tokio::test]
    async fn the_handshake_with_a_wrong_token_is_forbidden() {
        let (status, _) = call(
            &deps(),
            event(include_str!(
                "../../../events/whatsapp-webhook/handshake-bad-token.json"
            )),
        )
        .await;
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn a_handshake_without_a_challenge_is_a_bad_request() {
        let mut request = event(include_str!(
            "../../../events/whatsapp-webhook/handshake-ok.json"
        ));
        request.raw_query_string =
            Some("hub.mode=subscribe&hub.verify_token=local-verify-token".into());
        assert_eq!(call(&deps(), request).await.0, 400);
    }

    #[tokio::test]
    async fn a_signed_post_enqueues_all_five_items() {
        let deps = deps();
        let (status, _) = call(
            &deps,
            event(include_str!(
                "../../../events/whatsapp-webhook/signed-post.json"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(deps.queue.keys().len(), 5);
    }

    #[tokio::test]
    async fn an_entry_that_is_not_an_object_costs_the_valid_message_nothing() {
        let deps = deps();
        let (status, _) = call(
            &deps,
            event(include_str!(
                "../../../events/whatsapp-webhook/odd-entry.json"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            deps.queue.keys(),
            ["wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="]
        );
    }

    #[tokio::test]
    async fn a_base64_encoded_post_is_verified_on_the_decoded_bytes() {
        let deps = deps();
        let (status, _) = call(
            &deps,
            event(include_str!(
                "../../../events/whatsapp-webhook/signed-post-base64.json"
            )),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(deps.queue.keys().len(), 5);
    }

    #[tokio::test]
    async fn a_bad_signature_is_unauthorized_and_enqueues_nothing() {
        let deps = deps();
        let (status, body) = call(
            &deps,
            event(include_str!(
                "../../../events/whatsapp-webhook/bad-signature.json"
            )),
        )
        .await;
        assert_eq!((status, body.as_str()), (401, "Unauthorized"));
        assert!(deps.queue.keys().is_empty());
    }

    #[tokio::test]
    async fn a_body_over_three_megabytes_is_refused_unread() {
        let mut request = event(include_str!(
            "../../../events/whatsapp-webhook/signed-post.json"
        ));
        request.body = Some("x".repeat(MAX_BODY_BYTES + 1));
        assert_eq!(call(&deps(), request).await.0, 413);
    }

    #[tokio::test]
    async fn a_queue_outage_asks_meta_to_retry() {
        let deps = deps();
        deps.queue.fail_next(1);
        let (status, _) = call(
            &deps,
            event(include_str!(
                "../../../events/whatsapp-webhook/signed-post.json"
            )),
        )
        .await;
        assert_eq!(status, 503);
    }

    #[tokio::test]
    async fn signed_json_that_is_not_a_notification_is_a_bad_request() {
        let deps = deps();
        let mut request = event(include_str!(
            "../../../events/whatsapp-webhook/signed-post.json"
        ));
        let body = "not json at all";
        let signature = deps.app_secrets.sign(body.as_bytes()).expect("key");
        request.body = Some(body.into());
        request
            .headers
            .insert(SIGNATURE_HEADER, signature.parse().expect("header"));
        assert_eq!(call(&deps, request).await.0, 400);
    }

    #[tokio::test]
    async fn other_methods_are_not_allowed() {
        let mut request = event(include_str!(
            "../../../events/whatsapp-webhook/signed-post.json"
        ));
        request.request_context.http.method = ::http::Method::PUT;
        assert_eq!(call(&deps(), request).await.0, 405);
    }
}
