//! The AWS SDK's HTTP client: the bundle's one HTTP stack (reqwest, HTTP/1.1, rustls with ring
//! and the roots of `shared::crypto`), so a bootstrap links one client, one TLS configuration
//! and no HTTP/2 (every AWS API the functions call speaks HTTP/1.1; BENCHMARKS.md, packages).

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The client every SDK configuration of the bundle is given.
pub fn client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// Hands the SDK one reqwest connection pool per set of connector timeouts it asks for (in
/// practice one: the SDK's defaults), so connections are reused across calls and clients.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    /// The TLS settings; `None`: [`crate::crypto::tls_client_config`] (tests trust their own CA).
    tls: Option<rustls::ClientConfig>,
    pools: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = Timeouts {
            connect: settings.connect_timeout(),
            read: settings.read_timeout(),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, connector)) = pools.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let tls = match &self.tls {
            Some(tls) => Ok(tls.clone()),
            None => crate::crypto::tls_client_config(),
        };
        let connector = SharedHttpConnector::new(ReqwestConnector::new(timeouts, tls));
        pools.push((timeouts, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    /// The pool, or why it could not be made (reported on every call, as a permanent error).
    client: Result<reqwest::Client, Arc<BoxError>>,
}

impl ReqwestConnector {
    fn new(
        timeouts: Timeouts,
        tls: Result<rustls::ClientConfig, crate::crypto::TlsSetupError>,
    ) -> Self {
        let client = tls
            .map_err(BoxError::from)
            .and_then(|tls| {
                let mut builder = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .http1_only()
                    // The SDK reads redirects itself (S3's 301 names the bucket's region); a
                    // signed request must not be re-sent elsewhere behind its back.
                    .redirect(reqwest::redirect::Policy::none());
                if let Some(connect) = timeouts.connect {
                    builder = builder.connect_timeout(connect);
                }
                if let Some(read) = timeouts.read {
                    builder = builder.read_timeout(read);
                }
                builder.build().map_err(BoxError::from)
            })
            .map_err(Arc::new);
        Self { client }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(error) => {
                let error: BoxError = error.to_string().into();
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error)));
            }
        };
        // The body goes over as the SDK's own body, polled by hyper: the SDK watches that polling
        // (stalled-stream protection), and a body copied out and never polled looks stalled
        // to it while a slow answer is awaited.
        let request = match request
            .try_into_http1x()
            .map_err(BoxError::from)
            .and_then(|r| {
                reqwest::Request::try_from(r.map(reqwest::Body::wrap)).map_err(Into::into)
            }) {
            Ok(request) => request,
            Err(error) => return HttpConnectorFuture::ready(Err(ConnectorError::user(error))),
        };
        HttpConnectorFuture::new(async move {
            let response = client.execute(request).await.map_err(classify)?;
            let response: http::Response<reqwest::Body> = response.into();
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// What the SDK's retry strategy needs to know of a failed call: timeouts and I/O failures
/// (refused, reset, closed connections: what a Lambda thawed with a stale pooled connection
/// meets) are transient, as are responses cut short; a request the SDK built wrong is not.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(error.into());
    }
    if error.is_connect() {
        return ConnectorError::io(error.into());
    }
    if let Some(hyper) = find_source::<hyper::Error>(&error) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(error.into());
        }
        if hyper.is_user() {
            return ConnectorError::user(error.into());
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(error.into(), Some(ErrorKind::TransientError));
        }
        if hyper.is_closed() || hyper.is_canceled() {
            return ConnectorError::io(error.into());
        }
    }
    if find_source::<std::io::Error>(&error).is_some() {
        return ConnectorError::io(error.into());
    }
    ConnectorError::other(error.into(), None)
}

fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_server;
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    const QUEUE_URL: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/inbound.fifo";

    /// An answer of SQS's JSON protocol.
    fn sqs_answer(status: &str, extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\n{extra_headers}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn queue_url_answer() -> String {
        sqs_answer("200 OK", "", &format!(r#"{{"QueueUrl":"{QUEUE_URL}"}}"#))
    }

    fn sqs(endpoint: &str, http: SharedHttpClient) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .http_client(http)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    fn connector(read: Option<Duration>) -> ReqwestConnector {
        let timeouts = Timeouts {
            connect: Some(Duration::from_secs(1)),
            read,
        };
        ReqwestConnector::new(timeouts, crate::crypto::tls_client_config())
    }

    fn request(uri: &str) -> HttpRequest {
        HttpRequest::try_from(
            http::Request::builder()
                .uri(uri)
                .body(SdkBody::empty())
                .expect("request"),
        )
        .expect("smithy request")
    }

    #[tokio::test]
    async fn an_sdk_call_goes_out_signed_with_its_body_and_its_answer_comes_back() {
        let (address, requests) = test_server::plain_answering(queue_url_answer());
        let url = sqs(&format!("http://{address}"), client())
            .get_queue_url()
            .queue_name("inbound.fifo")
            .send()
            .await
            .expect("the call succeeds")
            .queue_url;
        assert_eq!(url.as_deref(), Some(QUEUE_URL));
        let request = requests.recv().expect("the server saw the request");
        assert!(request.starts_with("POST / HTTP/1.1"), "{request}");
        assert!(
            request.contains("x-amz-target: AmazonSQS.GetQueueUrl"),
            "{request}"
        );
        assert!(
            request.contains("authorization: AWS4-HMAC-SHA256"),
            "{request}"
        );
        assert!(
            request.ends_with(r#"{"QueueName":"inbound.fifo"}"#),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_sdk_call_over_tls_on_ring_reaches_a_server_the_roots_vouch_for() {
        let (address, requests) = test_server::answering(queue_url_answer());
        let http = SharedHttpClient::new(ReqwestHttpClient {
            tls: Some(test_server::trusting_test_ca()),
            ..ReqwestHttpClient::default()
        });
        let url = sqs(&format!("https://127.0.0.1:{}", address.port()), http)
            .get_queue_url()
            .queue_name("inbound.fifo")
            .send()
            .await
            .expect("the call succeeds over TLS")
            .queue_url;
        assert_eq!(url.as_deref(), Some(QUEUE_URL));
        let request = requests.recv().expect("the server saw the request");
        assert!(
            request.contains("x-amz-target: AmazonSQS.GetQueueUrl"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_service_error_reaches_the_caller_as_the_services_error() {
        let answer = sqs_answer(
            "400 Bad Request",
            "x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender\r\n",
            r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"no such queue"}"#,
        );
        let (address, _requests) = test_server::plain_answering(answer);
        let error = sqs(&format!("http://{address}"), client())
            .get_queue_url()
            .queue_name("missing")
            .send()
            .await
            .expect_err("no such queue")
            .into_service_error();
        assert!(error.is_queue_does_not_exist(), "{error:?}");
    }

    #[tokio::test]
    async fn an_answer_slower_than_the_stall_grace_period_is_not_a_stalled_upload() {
        // The SDK's stalled-stream protection watches its request body being polled; a body
        // taken out of it and sent by other means would look stalled while the answer is awaited.
        use aws_sdk_sqs::config::StalledStreamProtectionConfig;
        let (address, _requests) =
            test_server::plain_answering_after(queue_url_answer(), Duration::from_millis(2500));
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(format!("http://{address}"))
            .http_client(client())
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(Duration::from_secs(1))
                    .build(),
            )
            .build();
        let url = aws_sdk_sqs::Client::from_conf(config)
            .get_queue_url()
            .queue_name("inbound.fifo")
            .send()
            .await
            .expect("a slow answer is still an answer")
            .queue_url;
        assert_eq!(url.as_deref(), Some(QUEUE_URL));
    }

    #[tokio::test]
    async fn a_redirect_reaches_the_sdk_unfollowed() {
        let (address, requests) = test_server::plain_answering(
            "HTTP/1.1 301 Moved Permanently\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n"
                .to_owned(),
        );
        let response = connector(None)
            .call(request(&format!("http://{address}/bucket/key")))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 301);
        assert!(requests.recv().is_ok());
        assert!(requests.try_recv().is_err(), "one request, not followed");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transient_io_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let error = connector(None)
            .call(request(&format!("http://{address}/")))
            .await
            .expect_err("nothing listens");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        let error = connector(Some(Duration::from_millis(200)))
            .call(request(&format!("http://{address}/")))
            .await
            .expect_err("no answer");
        assert!(error.is_timeout(), "{error:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _closed = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer).await;
            drop(stream);
        });
        let error = connector(None)
            .call(request(&format!("http://{address}/")))
            .await
            .expect_err("closed");
        assert!(
            error.is_io() || error.as_other() == Some(ErrorKind::TransientError),
            "{error:?}"
        );
    }

    #[test]
    fn one_pool_per_set_of_timeouts() {
        let client = ReqwestHttpClient::default();
        let components =
            aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder::for_tests()
                .build()
                .expect("components");
        let defaults = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_millis(3100))
            .build();
        let _ = client.http_connector(&defaults, &components);
        let _ = client.http_connector(&defaults, &components);
        let other = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(1))
            .build();
        let _ = client.http_connector(&other, &components);
        assert_eq!(client.pools.lock().expect("lock").len(), 2);
    }
}
