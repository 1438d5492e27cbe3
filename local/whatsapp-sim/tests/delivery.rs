//! How the simulator delivers webhooks: batching, reordering and redelivery after a refusal, each
//! shown with held deliveries rather than by racing a gather window.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use shared::secrets::Secret;
use shared::whatsapp::signature::{self, AppSecretKeys};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whatsapp_sim::{SimConfig, Simulator};

const TOKEN: &str = "sim-access-token";
const APP_SECRET: &str = "sim-app-secret";
const USER: &str = "13125550147";

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Value>>>,
    keys: AppSecretKeys,
    refuse_first: Arc<AtomicUsize>,
}

/// A callback endpoint that checks Meta's signature and keeps every notification body.
struct Receiver {
    url: String,
    state: ReceiverState,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 500 to the first `refuse_first` signed POSTs (an endpoint that is briefly down).
    async fn start(refuse_first: usize) -> Self {
        let state = ReceiverState {
            received: Arc::new(Mutex::new(Vec::new())),
            keys: AppSecretKeys::new(&[Secret::new(APP_SECRET)]),
            refuse_first: Arc::new(AtomicUsize::new(refuse_first)),
        };
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes| async move {
                        let header = headers
                            .get(signature::SIGNATURE_HEADER)
                            .map(|v| v.as_bytes());
                        if signature::verify(&state.keys, header, false, &body).is_err() {
                            return StatusCode::UNAUTHORIZED;
                        }
                        let refused = state
                            .refuse_first
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if refused {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        match serde_json::from_slice::<Value>(&body) {
                            Ok(notification) => {
                                state.received.lock().expect("lock").push(notification);
                                StatusCode::OK
                            }
                            Err(_) => StatusCode::BAD_REQUEST,
                        }
                    },
                ),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            state,
            _task: task,
        }
    }

    fn received(&self) -> Vec<Value> {
        self.state.received.lock().expect("lock").clone()
    }
}

/// The wamids of the inbound messages of one notification, in order.
fn message_ids(notification: &Value) -> Vec<String> {
    notification["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().cloned().unwrap_or_default())
        .flat_map(|c| {
            c["value"]["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

async fn sim_to(receiver: &Receiver, configure: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    config.callback_url = Some(receiver.url.clone());
    configure(&mut config);
    Simulator::start(config).await.expect("simulator")
}

#[tokio::test]
async fn batching_puts_several_items_in_one_post_and_out_of_order_reverses_them() {
    let receiver = Receiver::start(0).await;
    // No gather window: only the hold gathers the three messages into one POST.
    let sim = sim_to(&receiver, |c| {
        c.delivery.batch_size = 10;
        c.delivery.gather_window = Duration::ZERO;
    })
    .await;
    let user = sim.user(USER);
    sim.hold_deliveries();
    let ids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|t| user.send_text(t))
        .collect();
    sim.release_deliveries();
    sim.idle().await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "one POST");
    assert_eq!(message_ids(&received[0]), ids);
    assert_eq!(sim.deliveries()[0].items, 3);

    let receiver = Receiver::start(0).await;
    let sim = sim_to(&receiver, |c| {
        c.delivery.out_of_order = true;
        c.delivery.gather_window = Duration::ZERO;
    })
    .await;
    let user = sim.user(USER);
    sim.hold_deliveries();
    let first = user.send_text("first");
    let second = user.send_text("second");
    sim.release_deliveries();
    sim.idle().await;
    let received = receiver.received();
    let order: Vec<String> = received.iter().flat_map(message_ids).collect();
    assert_eq!(received.len(), 2, "one item per POST");
    assert_eq!(order, [second, first]);
}

#[tokio::test]
async fn a_refused_delivery_is_redelivered_until_the_endpoint_accepts_it() {
    let receiver = Receiver::start(2).await;
    let sim = sim_to(&receiver, |c| {
        c.delivery.retry_delay = Duration::from_millis(10)
    })
    .await;
    let id = sim.user(USER).send_text("are you there?");
    sim.idle().await;
    let attempts: Vec<(u32, Option<u16>)> = sim
        .deliveries()
        .iter()
        .map(|d| (d.attempt, d.status))
        .collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(message_ids(&received[0]), [id]);
}
