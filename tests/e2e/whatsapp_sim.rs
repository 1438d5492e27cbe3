//! The WhatsApp client against the simulator (every error class, media streaming) and simulator
//! webhooks through the real `whatsapp-webhook` function. Tests of the simulator alone (Meta's spec
//! examples, batching, redelivery) are in `local/whatsapp-sim/tests/`. Rate limits run on the
//! simulator's manual clock, so no test races a wall-clock window.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use e2e::{APP_SECRET, TestEnv};
use serde_json::{Value, json};
use shared::domain::inbound::{InboundItem, InboundKind};
use shared::error::Retryable;
use shared::secrets::Secret;
use shared::whatsapp::client::{SendError, SendReceipt, WhatsAppClient};
use shared::whatsapp::errors::{ApiError, Backoff, ErrorClass};
use shared::whatsapp::media::{ExpectedMedia, MediaCaps, MediaError};
use shared::whatsapp::messages::*;
use shared::whatsapp::signature::{self, AppSecretKeys};
use shared::whatsapp::webhook_types::{Notification, StatusKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whatsapp_sim::{Clock, Limits, SimConfig, Simulator};

const TOKEN: &str = "sim-access-token";
const USER: &str = "447700900123";

type ReceiverState = (Arc<Mutex<Vec<Notification>>>, AppSecretKeys);

/// A webhook receiver that checks Meta's signature and keeps every notification.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Notification>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let keys = AppSecretKeys::new(&[Secret::new(APP_SECRET)]);
        let state = (Arc::clone(&received), keys);
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State((received, keys)): State<ReceiverState>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let header = headers
                            .get(signature::SIGNATURE_HEADER)
                            .map(|v| v.as_bytes());
                        if signature::verify(&keys, header, false, &body).is_err() {
                            return StatusCode::UNAUTHORIZED;
                        }
                        match Notification::parse(&body) {
                            Ok(n) => {
                                received.lock().expect("lock").push(n);
                                StatusCode::OK
                            }
                            Err(_) => StatusCode::BAD_REQUEST,
                        }
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received,
            _task: task,
        }
    }

    /// `(wamid, status, error codes)` of every status received.
    fn statuses(&self) -> Vec<(String, StatusKind, Vec<i64>)> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|n| {
                n.statuses()
                    .map(|s| {
                        (
                            s.id.clone(),
                            s.kind(),
                            s.errors.iter().map(|e| e.code).collect(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn sim_with(configure: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    configure(&mut config);
    Simulator::start(config).await.expect("simulator")
}

fn client(sim: &Simulator, token: &str) -> WhatsAppClient {
    WhatsAppClient::new(sim.client_config(), Secret::new(token)).expect("client")
}

fn to() -> Recipient {
    Recipient::phone(&format!("+{USER}")).expect("phone")
}

fn api_error(result: Result<SendReceipt, SendError>) -> ApiError {
    match result {
        Err(SendError::Api(error)) => error,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn template(name: &str, language: &str, params: &[&str]) -> OutgoingMessage {
    OutgoingMessage::new(
        to(),
        Content::Template(Template {
            name: name.into(),
            language: language.into(),
            header: None,
            body: params.iter().map(|p| TemplateParam::text(*p)).collect(),
            buttons: Vec::new(),
        }),
    )
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error() {
    let sim = sim_with(|_| {}).await;
    let error = api_error(
        client(&sim, "expired")
            .send(&OutgoingMessage::text(to(), "hi"))
            .await,
    );
    assert_eq!(error.code(), Some(190));
    assert_eq!(error.class(), ErrorClass::Auth);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn template_errors_are_permanent_and_a_valid_template_is_accepted() {
    let sim = sim_with(|_| {}).await;
    let client = client(&sim, TOKEN);
    let unknown = api_error(
        client
            .send(&template("no_such_template", "en_US", &[]))
            .await,
    );
    assert_eq!(
        (unknown.code(), unknown.class()),
        (Some(132_001), ErrorClass::Permanent)
    );
    let wrong_language = api_error(
        client
            .send(&template("review_request", "en", &["a", "b"]))
            .await,
    );
    assert_eq!(wrong_language.code(), Some(132_001));
    let wrong_count = api_error(
        client
            .send(&template("review_request", "en_US", &["a"]))
            .await,
    );
    assert_eq!(
        (wrong_count.code(), wrong_count.class()),
        (Some(132_000), ErrorClass::Permanent)
    );
    let receipt = client
        .send(&template("review_request", "en_US", &["Spring", "Friday"]))
        .await
        .expect("accepted");
    assert!(receipt.message_id.starts_with("wamid."));
    assert_eq!(receipt.wa_id.as_deref(), Some(USER));
    assert_eq!(receipt.message_status.as_deref(), Some("accepted"));
}

#[tokio::test]
async fn an_unknown_phone_number_id_is_a_permanent_invalid_parameter() {
    let sim = sim_with(|_| {}).await;
    let mut config = sim.client_config();
    config.phone_number_id = "999".into();
    let client = WhatsAppClient::new(config, Secret::new(TOKEN)).expect("client");
    let error = api_error(client.send(&OutgoingMessage::text(to(), "hi")).await);
    assert_eq!(
        (error.code(), error.class()),
        (Some(100), ErrorClass::Permanent)
    );
}

#[tokio::test]
async fn throughput_and_pair_rate_limits_are_retryable_with_their_backoff() {
    // The simulator's clock stands still: all 30 sends fall in one second, however slow the machine.
    let sim = sim_with(|c| {
        c.clock = Clock::manual();
        c.limits = Limits {
            throughput_per_second: 5,
            pair_burst: 100,
            ..Limits::default()
        };
    })
    .await;
    let client = client(&sim, TOKEN);
    let hello = |i: usize| {
        let to = Recipient::phone(&format!("+4477009{i:05}")).expect("phone");
        template("hello_world", "en_US", &[]).with_to(to)
    };
    let sends = (0..30).map(|i| {
        let client = client.clone();
        let message = hello(i);
        async move { client.send(&message).await }
    });
    let results = futures::future::join_all(sends).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let throttled: Vec<ApiError> = results
        .into_iter()
        .filter_map(|r| {
            r.err().and_then(|e| match e {
                SendError::Api(api) => Some(api),
                SendError::Invalid(_) => None,
            })
        })
        .collect();
    assert!(
        !throttled.is_empty(),
        "30 sends at 5/s must hit the throughput limit"
    );
    assert_eq!(
        (accepted, throttled.len()),
        (5, 25),
        "5 inside the second, the rest throttled"
    );
    assert!(throttled.iter().all(|e| e.code() == Some(130_429)
        && e.class()
            == ErrorClass::Retryable {
                backoff: Backoff::Exponential
            }));
    sim.advance_clock(Duration::from_secs(1));
    client
        .send(&hello(30))
        .await
        .expect("the next second has room again");

    let sim = sim_with(|c| {
        c.clock = Clock::manual();
        c.limits = Limits {
            pair_burst: 3,
            ..Limits::default()
        }
    })
    .await;
    let client = self::client(&sim, TOKEN);
    for _ in 0..3 {
        client
            .send(&template("hello_world", "en_US", &[]))
            .await
            .expect("within the burst");
    }
    let error = api_error(client.send(&template("hello_world", "en_US", &[])).await);
    assert_eq!(error.code(), Some(131_056));
    assert_eq!(
        error.class(),
        ErrorClass::Retryable {
            backoff: Backoff::PairRate
        }
    );
    // One message per 6 s to the same user once the burst is spent.
    sim.advance_clock(Duration::from_secs(6));
    client
        .send(&template("hello_world", "en_US", &[]))
        .await
        .expect("6 s later the pair rate allows one more");
}

trait WithTo {
    fn with_to(self, to: Recipient) -> Self;
}

impl WithTo for OutgoingMessage {
    fn with_to(mut self, to: Recipient) -> Self {
        self.to = to;
        self
    }
}

#[tokio::test]
async fn window_and_opt_out_failures_arrive_as_failed_status_webhooks() {
    let receiver = Receiver::start().await;
    let sim = sim_with(|c| c.callback_url = Some(receiver.url.clone())).await;
    let client = client(&sim, TOKEN);

    // Never wrote: free-form is accepted with a wamid, then fails asynchronously with 131047.
    let closed = client
        .send(&OutgoingMessage::text(to(), "hello"))
        .await
        .expect("accepted");
    sim.user("447700900999").stop_marketing();
    let opted_out = client
        .send(
            &template("spring_campaign", "en_US", &["20% off"])
                .with_to(Recipient::phone("+447700900999").expect("phone")),
        )
        .await
        .expect("accepted");
    // Wrote 23 hours ago: the window is still open, so text is delivered and read.
    sim.user("447700900555")
        .last_wrote(Some(Duration::from_secs(23 * 3600)));
    let open = client
        .send(&OutgoingMessage::text(
            Recipient::phone("+447700900555").expect("phone"),
            "hi",
        ))
        .await
        .expect("accepted");
    sim.idle().await;

    let statuses = receiver.statuses();
    let of = |id: &str| -> Vec<(StatusKind, Vec<i64>)> {
        statuses
            .iter()
            .filter(|s| s.0 == id)
            .map(|s| (s.1, s.2.clone()))
            .collect()
    };
    assert_eq!(
        of(&closed.message_id),
        [(StatusKind::Failed, vec![131_047])]
    );
    assert_eq!(
        of(&opted_out.message_id),
        [(StatusKind::Failed, vec![131_050])]
    );
    assert_eq!(
        of(&open.message_id),
        [
            (StatusKind::Sent, vec![]),
            (StatusKind::Delivered, vec![]),
            (StatusKind::Read, vec![])
        ]
    );
    let notifications = receiver.received.lock().expect("lock").clone();
    let classes: Vec<ErrorClass> = notifications
        .iter()
        .flat_map(|n| {
            n.statuses()
                .flat_map(|s| s.errors.iter().map(|e| e.class()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(classes.contains(&ErrorClass::NeedsTemplate));
    assert!(classes.contains(&ErrorClass::OptedOut));
}

#[tokio::test]
async fn mark_as_read_needs_a_known_inbound_message() {
    let receiver = Receiver::start().await;
    let sim = sim_with(|c| c.callback_url = Some(receiver.url.clone())).await;
    let client = client(&sim, TOKEN);
    let inbound = sim.user(USER).send_text("Is my order shipped?");
    client.mark_read(&inbound, true).await.expect("marked read");
    let error = match client.mark_read("wamid.unknown", false).await {
        Err(SendError::Api(error)) => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (error.code(), error.class()),
        (Some(131_009), ErrorClass::Permanent)
    );
    sim.idle().await;
    let received = receiver.received.lock().expect("lock").clone();
    let (message, contact) = received[0].messages().next().expect("the user's message");
    assert_eq!(message.id, inbound);
    assert_eq!(contact.and_then(|c| c.wa_id.as_deref()), Some(USER));
}

#[tokio::test]
async fn client_validation_refuses_before_anything_is_sent() {
    let sim = sim_with(|_| {}).await;
    let result = client(&sim, TOKEN)
        .send(&OutgoingMessage::text(to(), "x".repeat(4097)))
        .await;
    assert!(matches!(
        result,
        Err(SendError::Invalid(ValidationError::TooLong {
            max: 4096,
            ..
        }))
    ));
    assert!(
        sim.users().iter().all(|u| u.lines.is_empty()),
        "nothing reached the simulator"
    );
}

#[tokio::test]
async fn uploaded_media_streams_back_verified_and_an_expired_url_is_fetched_again() {
    let sim = sim_with(|_| {}).await;
    let client = client(&sim, TOKEN);
    let pdf = b"%PDF-1.7 simulated invoice".repeat(1000);
    let media_id = client
        .upload_media(pdf.clone(), "application/pdf", "invoice.pdf")
        .await
        .expect("uploaded");
    let info = client.media_info(&media_id).await.expect("info");
    assert_eq!(info.file_size, pdf.len() as u64);
    assert_eq!(info.mime_type, "application/pdf");

    let expected = ExpectedMedia {
        media_id: media_id.clone(),
        kind: MediaKind::Document,
        sha256_base64: None,
    };
    let mut sink = Vec::new();
    let downloaded = client
        .download_media(&expected, &MediaCaps::default(), &mut sink)
        .await
        .expect("downloaded");
    assert_eq!(sink, pdf);
    assert_eq!(downloaded.url_fetches, 1);

    sim.expire_next_download_url();
    let mut sink = Vec::new();
    let downloaded = client
        .download_media(&expected, &MediaCaps::default(), &mut sink)
        .await
        .expect("refetched");
    assert_eq!((downloaded.url_fetches, sink.len()), (2, pdf.len()));

    // The download URL itself needs the token and dies with time.
    let info = client.media_info(&media_id).await.expect("info");
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(http.get(&info.url).send().await.expect("get")), 401);
    assert_eq!(
        status(
            http.get(&info.url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("get")
        ),
        200
    );
    sim.expire_download_urls();
    assert_eq!(
        status(
            http.get(&info.url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("get")
        ),
        404
    );

    let upload = client
        .upload_media(b"MZ".to_vec(), "application/x-msdownload", "a.exe")
        .await;
    assert!(matches!(upload, Err(ApiError::Graph { ref error, .. }) if error.code == 100));
}

#[tokio::test]
async fn a_wrong_sha256_an_oversized_file_and_a_bad_token_are_rejected() {
    let receiver = Receiver::start().await;
    let sim = sim_with(|c| c.callback_url = Some(receiver.url.clone())).await;
    let client = client(&sim, TOKEN);
    let photo = vec![0xFF_u8; 64 * 1024];
    let (_, media_id) = sim.user(USER).send_media(
        MediaKind::Image,
        "image/jpeg",
        photo.clone(),
        Some("site visit"),
        None,
    );
    sim.idle().await;
    let received = receiver.received.lock().expect("lock").clone();
    let (message, _) = received[0].messages().next().expect("image message");
    let (kind, media) = message.content.media().expect("media");
    assert_eq!(media.id, media_id);

    let from_webhook = ExpectedMedia {
        media_id: media.id.clone(),
        kind,
        sha256_base64: media.sha256.clone(),
    };
    let mut sink = Vec::new();
    client
        .download_media(&from_webhook, &MediaCaps::default(), &mut sink)
        .await
        .expect("verified");
    assert_eq!(sink, photo);

    let wrong = ExpectedMedia {
        sha256_base64: Some(base64_of(&[0_u8; 32])),
        ..from_webhook.clone()
    };
    let result = client
        .download_media(&wrong, &MediaCaps::default(), &mut Vec::new())
        .await;
    assert!(
        matches!(result, Err(MediaError::ChecksumMismatch)),
        "{result:?}"
    );

    sim.tamper_media(&media.id);
    let without_webhook_hash = ExpectedMedia {
        sha256_base64: None,
        ..from_webhook.clone()
    };
    let result = client
        .download_media(
            &without_webhook_hash,
            &MediaCaps::default(),
            &mut Vec::new(),
        )
        .await;
    assert!(
        matches!(result, Err(MediaError::ChecksumMismatch)),
        "corruption is caught against Graph's hash"
    );

    let small_caps = MediaCaps {
        image: 1024,
        ..MediaCaps::default()
    };
    let result = client
        .download_media(&from_webhook, &small_caps, &mut Vec::new())
        .await;
    assert!(matches!(
        result,
        Err(MediaError::TooLarge { cap: 1024, .. })
    ));

    let result = self::client(&sim, "expired")
        .download_media(&from_webhook, &MediaCaps::default(), &mut Vec::new())
        .await;
    assert!(
        matches!(&result, Err(e) if e.class() == ErrorClass::Auth),
        "{result:?}"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn simulator_webhooks_reach_the_inbound_queue_through_the_real_webhook_function() {
    let env = TestEnv::start().await;
    let sim = sim_with(|c| {
        c.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        // Meta may deliver twice; the edge and the FIFO queue must keep one copy.
        c.delivery.duplicates = true;
    })
    .await;
    let user = sim.user(USER);
    user.send_text("Hi, here is the site photo — café corner");
    user.send_location(51.50135, -0.14189, Some("Site A"));
    user.send_media(
        MediaKind::Image,
        "image/jpeg",
        vec![1, 2, 3],
        Some("facade"),
        None,
    );
    let client = client(&sim, TOKEN);
    let buttons = OutgoingMessage::new(
        to(),
        Content::Buttons(ReplyButtons {
            header: None,
            body: "Approve asset 42?".into(),
            footer: None,
            buttons: vec![
                ReplyButton {
                    id: "approve:42".into(),
                    title: "Approve".into(),
                },
                ReplyButton {
                    id: "reject:42".into(),
                    title: "Reject".into(),
                },
            ],
        }),
    );
    let sent = client.send(&buttons).await.expect("inside the window");
    user.tap_reply_button(&sent.message_id, "approve:42", "Approve");
    sim.idle().await;

    let deliveries = sim.deliveries();
    assert!(!deliveries.is_empty());
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    assert!(deliveries.iter().any(|d| d.duplicate));
    // 4 user messages + sent, delivered, read of the business message; duplicates removed.
    assert_eq!(env.queue_depth("InboundQueue").await, 7);
    let items: Vec<InboundItem> = env
        .receive_all("InboundQueue")
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("an inbound envelope"))
        .collect();
    let count = |kind: InboundKind| items.iter().filter(|i| i.kind == kind).count();
    assert_eq!(
        (count(InboundKind::Message), count(InboundKind::Status)),
        (4, 3)
    );
    assert!(
        items
            .iter()
            .all(|i| i.phone_number_id.as_deref() == Some("109876543210987"))
    );
    let users: std::collections::HashSet<_> = items.iter().map(|i| i.user.clone()).collect();
    assert_eq!(
        users.len(),
        1,
        "messages and statuses of one user share one pseudonym"
    );
    assert!(
        items
            .iter()
            .all(|i| i.user.as_ref().is_some_and(|u| !u.as_str().contains(USER)))
    );
}

#[tokio::test]
async fn a_refused_delivery_is_retried_with_backoff_then_dropped() {
    let env = TestEnv::start().await;
    let sim = sim_with(|c| {
        c.callback_url = Some(env.stack.url("/whatsapp/webhook"));
        c.app_secret = "not-the-apps-secret".into();
        c.delivery.retry_delay = Duration::from_millis(10);
        c.delivery.max_attempts = 3;
    })
    .await;
    sim.user(USER).send_text("signed with the wrong secret");
    sim.idle().await;
    let attempts: Vec<(u32, Option<u16>, bool)> = sim
        .deliveries()
        .iter()
        .map(|d| (d.attempt, d.status, d.dropped))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Some(401), false),
            (2, Some(401), false),
            (3, Some(401), true)
        ]
    );
    assert_eq!(env.queue_depth("InboundQueue").await, 0);
}

#[tokio::test]
async fn a_username_user_without_a_phone_is_reached_by_business_scoped_id() {
    let receiver = Receiver::start().await;
    let sim = sim_with(|c| c.callback_url = Some(receiver.url.clone())).await;
    let bsuid = "US.13491208655302741918";
    let user = sim.user(bsuid);
    user.set_username("ana.designs");
    user.send_text("hi from a username");
    let receipt = client(&sim, TOKEN)
        .send(&OutgoingMessage::text(
            Recipient::user_id(bsuid).expect("bsuid"),
            "hello",
        ))
        .await
        .expect("inside the window");
    assert_eq!(
        (receipt.user_id.as_deref(), receipt.wa_id.as_deref()),
        (Some(bsuid), None)
    );
    sim.idle().await;
    let received = receiver.received.lock().expect("lock").clone();
    let (message, contact) = received[0].messages().next().expect("message");
    assert_eq!(
        (message.from.as_deref(), message.sender_key()),
        (None, Some(bsuid))
    );
    let contact = contact.expect("matched by user id");
    assert_eq!(
        contact.profile.as_ref().and_then(|p| p.username.as_deref()),
        Some("ana.designs")
    );
    let statuses: Vec<_> = received
        .iter()
        .flat_map(|n| n.statuses().cloned().collect::<Vec<_>>())
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(
        statuses
            .iter()
            .all(|s| s.recipient_id.is_none() && s.recipient_user_id.as_deref() == Some(bsuid))
    );
}

#[tokio::test]
async fn the_control_and_read_apis_show_each_users_conversation() {
    let sim = sim_with(|_| {}).await;
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(format!("{}/sim/users/{USER}/messages", sim.base_url()))
        .json(&json!({"type": "text", "body": "<b>hello</b>"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let inbound = answer["id"].as_str().expect("wamid").to_owned();
    client(&sim, TOKEN)
        .send(&OutgoingMessage::text(to(), "Thanks, noted"))
        .await
        .expect("window open");
    sim.idle().await;

    let conversations: Value = http
        .get(format!("{}/sim/conversations", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let lines = conversations["users"][USER]["lines"]
        .as_array()
        .expect("lines");
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["direction"].clone(), lines[0]["id"].clone()),
        (json!("in"), json!(inbound))
    );
    assert_eq!(
        (lines[1]["summary"].clone(), lines[1]["status"].clone()),
        (json!("Thanks, noted"), json!("read"))
    );

    let page = http
        .get(format!("{}/sim", sim.base_url()))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("&lt;b&gt;hello&lt;/b&gt;") && !page.contains("<b>hello"),
        "escaped"
    );
    assert!(page.contains("Thanks, noted"));
}

#[tokio::test]
async fn an_unreachable_graph_is_a_retryable_transport_error() {
    // Bind then drop a listener: nothing answers on that port any more.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = shared::whatsapp::client::GraphApiConfig::meta("109876543210987");
    config.base_url = format!("http://127.0.0.1:{port}");
    let client = WhatsAppClient::new(config, Secret::new(TOKEN)).expect("client");
    let error = api_error(client.send(&OutgoingMessage::text(to(), "hi")).await);
    assert!(matches!(error, ApiError::Transport(_)), "{error:?}");
    assert_eq!(
        error.class(),
        ErrorClass::Retryable {
            backoff: Backoff::Exponential
        }
    );
}

#[tokio::test]
async fn a_graph_outage_is_retryable_and_the_retry_goes_through() {
    let sim = sim_with(|_| {}).await;
    let client = client(&sim, TOKEN);
    sim.fail_next_requests(1);
    let message = template("hello_world", "en_US", &[]);
    let error = api_error(client.send(&message).await);
    assert!(
        matches!(error, ApiError::Graph { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!((error.code(), error.is_retryable()), (Some(131_000), true));
    client.send(&message).await.expect("the retry is accepted");
}
