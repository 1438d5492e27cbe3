//! The HTTP side: Graph endpoints (messages, media, templates), the expiring download URL,
//! simulated users, and the read API / HTML page.

use crate::clock::Clock;
use crate::delivery::{self, Business, Deliveries, DeliveryRecord, DeliverySwitches, Item};
use crate::spec::{Spec, SpecError};
use crate::world::{
    ConversationLine, Fault, Limits, Media, MediaBytes, ReviewStatus, SimGraphError, TemplateDef,
    User, World, default_templates, summarize, unix_now,
};
use aws_lc_rs::digest;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::whatsapp::messages::MediaKind;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address (`127.0.0.1:0` picks a port).
    pub addr: SocketAddr,
    /// The only bearer token accepted (others get 190).
    pub access_token: String,
    /// Signs webhooks (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// Where webhooks go; none: they are only recorded.
    pub callback_url: Option<String>,
    /// The business number's id.
    pub phone_number_id: String,
    /// Its display number (digits).
    pub display_phone_number: String,
    /// The WABA id.
    pub waba_id: String,
    /// Life of a media download URL (Meta: 5 minutes).
    pub download_url_ttl: Duration,
    /// Rate limits.
    pub limits: Limits,
    /// Delay between sent, delivered and read statuses.
    pub status_delay: Duration,
    /// Users read what they receive.
    pub auto_read: bool,
    /// Webhook delivery switches.
    pub delivery: DeliverySwitches,
    /// Approved templates.
    pub templates: Vec<TemplateDef>,
    /// Meta's OpenAPI spec, for request validation.
    pub spec_path: std::path::PathBuf,
    /// Time for rate limits, the 24-hour window and download URL life ([`Clock::manual`] in tests).
    pub clock: Clock,
}

impl SimConfig {
    /// Defaults: a random loopback port, Meta's limits, the default templates.
    pub fn new(access_token: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_token: access_token.into(),
            app_secret: app_secret.into(),
            callback_url: None,
            phone_number_id: "109876543210987".into(),
            display_phone_number: "15551230000".into(),
            waba_id: "204060801234567".into(),
            download_url_ttl: Duration::from_secs(300),
            limits: Limits::default(),
            status_delay: Duration::from_millis(20),
            auto_read: true,
            delivery: DeliverySwitches::default(),
            templates: default_templates(),
            spec_path: crate::spec::default_spec_path(),
            clock: Clock::system(),
        }
    }
}

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The spec did not load.
    #[error("cannot load the OpenAPI spec")]
    Spec(#[from] SpecError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Inner {
    config: SimConfig,
    /// `None` when the spec file is not beside the repository (a clone without `shared/`): then
    /// bodies are not schema-checked, and the simulator says so once at start.
    spec: Option<Spec>,
    world: Mutex<World>,
    deliveries: Arc<Deliveries>,
    base_url: String,
}

impl Inner {
    fn world(&self) -> MutexGuard<'_, World> {
        // A panicking handler must not take the whole simulator down with a poisoned lock.
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running simulator; dropping it stops the server.
#[derive(Debug)]
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Simulator {
    /// Loads the spec (when present), binds, and serves.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        let spec = if config.spec_path.exists() {
            Some(Spec::load(&config.spec_path)?)
        } else {
            tracing::warn!(path = %config.spec_path.display(),
                "Meta's OpenAPI spec is not there: request bodies are not schema-checked (set WHATSAPP_SPEC_PATH)");
            None
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.addr,
            source,
        })?;
        let (deliveries, delivery_task) = delivery::start(
            config.callback_url.clone(),
            &config.app_secret,
            Business {
                waba_id: config.waba_id.clone(),
                phone_number_id: config.phone_number_id.clone(),
                display_phone_number: config.display_phone_number.clone(),
            },
            config.delivery.clone(),
        );
        let inner = Arc::new(Inner {
            world: Mutex::new(World::new(config.templates.clone(), config.limits)),
            spec,
            deliveries,
            base_url: format!("http://{addr}"),
            config,
        });
        let app = router(Arc::clone(&inner));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(error = %error, "simulator server stopped");
            }
        });
        Ok(Self {
            inner,
            addr,
            tasks: vec![server, delivery_task],
        })
    }

    /// `http://127.0.0.1:PORT`: the client's `base_url`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration in use.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Client settings pointing at this simulator.
    pub fn client_config(&self) -> shared::whatsapp::client::GraphApiConfig {
        let mut config = shared::whatsapp::client::GraphApiConfig::meta(
            self.inner.config.phone_number_id.clone(),
        );
        config.base_url = self.inner.base_url.clone();
        config
    }

    /// A simulated user with this phone number (digits) or business-scoped user id.
    pub fn user(&self, key: &str) -> SimUser {
        let key: String = if key.contains('.') {
            key.to_owned()
        } else {
            key.chars().filter(char::is_ascii_digit).collect()
        };
        self.inner.world().user(&key);
        SimUser {
            inner: Arc::clone(&self.inner),
            key,
        }
    }

    /// Waits until every webhook queued or scheduled so far is delivered (or dropped).
    pub async fn idle(&self) {
        self.inner.deliveries.idle().await;
    }

    /// Every webhook delivery attempt.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.deliveries.records()
    }

    /// Meta's review will reject templates named `name` with `reason` (`INVALID_FORMAT`,
    /// `PROMOTIONAL`, ...); every other submitted template is approved.
    pub fn reject_templates_named(&self, name: &str, reason: &str) {
        self.inner
            .world()
            .review_rejections
            .insert(name.to_owned(), reason.to_owned());
    }

    /// Completes every pending template review (approved ones become usable for sends); returns
    /// how many were reviewed.
    pub fn review_templates(&self) -> usize {
        self.inner.world().review_templates()
    }

    /// `(name, language, status)` of every submitted template.
    pub fn submitted_templates(&self) -> Vec<(String, String, ReviewStatus)> {
        self.inner
            .world()
            .submitted
            .iter()
            .map(|t| {
                (
                    t.request.name.clone(),
                    t.request.language.clone(),
                    t.status.clone(),
                )
            })
            .collect()
    }

    /// A snapshot of every user and conversation.
    pub fn users(&self) -> Vec<User> {
        self.inner.world().users.values().cloned().collect()
    }

    /// Adds media held in memory (as if uploaded); returns its id and base64 sha256.
    pub fn add_media(&self, mime_type: &str, bytes: Vec<u8>) -> (String, String) {
        store_media(&self.inner, mime_type, Bytes::from(bytes))
    }

    /// Adds a large media object generated on the fly (never held in memory).
    pub fn add_synthetic_media(&self, mime_type: &str, size: u64) -> (String, String) {
        let mut hasher = digest::Context::new(&digest::SHA256);
        let block = synthetic_block();
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            hasher.update(&block[..n]);
            left -= n as u64;
        }
        let sha = hasher.finish();
        let mut world = self.inner.world();
        let id = format!("{}", 7_000_000_000_000_000 + world.next_id());
        world.media.insert(
            id.clone(),
            Media {
                mime_type: mime_type.to_owned(),
                bytes: MediaBytes::Synthetic { size },
                sha256_hex: hex::encode(sha.as_ref()),
                size,
                tampered: false,
            },
        );
        (
            id,
            base64::engine::general_purpose::STANDARD.encode(sha.as_ref()),
        )
    }

    /// Serves the media with one byte flipped from now on (its hash no longer matches).
    pub fn tamper_media(&self, media_id: &str) {
        if let Some(media) = self.inner.world().media.get_mut(media_id) {
            media.tampered = true;
        }
    }

    /// The next `n` message requests fail with HTTP 500 and code 131000, as during a Graph outage.
    pub fn fail_next_requests(&self, n: u32) {
        self.inner.world().outage_requests = n;
    }

    /// The next `requests` message requests are answered with `fault` (130429, 131056, a bare
    /// HTTP 500, 190); nothing is accepted meanwhile. `requests = u32::MAX` holds until cleared.
    pub fn fault_next(&self, fault: Fault, requests: u32) {
        self.inner.world().fault = Some((fault, requests));
    }

    /// Ends a fault window.
    pub fn clear_fault(&self) {
        self.inner.world().fault = None;
    }

    /// The next `n` accepted messages are answered only after `delay` (set it past the client's
    /// timeout): Graph has the message and sends its statuses, the sender never learns its id.
    pub fn stall_next_answers(&self, n: u32, delay: Duration) {
        self.inner.world().stall = Some((n, delay));
    }

    /// The most message requests accepted in any one-second window (`[t, t + 1 s)`) so far.
    pub fn max_accepted_per_second(&self) -> usize {
        crate::world::most_in_any_second(&self.inner.world().accepted_at)
    }

    /// Message requests accepted so far.
    pub fn accepted_messages(&self) -> usize {
        self.inner.world().accepted_at.len()
    }

    /// The next download URL handed out is already expired (the client must fetch a fresh one).
    pub fn expire_next_download_url(&self) {
        self.inner.world().expire_next_url = true;
    }

    /// Expires every download URL handed out so far (as 5 minutes passing would).
    pub fn expire_download_urls(&self) {
        let past = self.inner.config.clock.ago(Duration::from_secs(1));
        for (_, expiry) in self.inner.world().tickets.values_mut() {
            *expiry = past;
        }
    }

    /// The clock the simulator's rules run on.
    pub fn clock(&self) -> &Clock {
        &self.inner.config.clock
    }

    /// Moves the simulator's time forward, as if `by` passed at once (rate limits refill, windows
    /// close, download URLs die); with [`Clock::manual`], the only way its time moves.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.config.clock.advance(by);
    }

    /// Holds webhooks back: what users and statuses produce from now on waits, gathered, until
    /// [`release_deliveries`](Self::release_deliveries) sends it (batched and ordered by the
    /// delivery switches), so batching is shown without racing the gather window.
    pub fn hold_deliveries(&self) {
        self.inner.deliveries.hold();
    }

    /// Sends everything held since [`hold_deliveries`](Self::hold_deliveries) and stops holding.
    pub fn release_deliveries(&self) {
        self.inner.deliveries.unhold();
    }
}

/// A simulated user: sends messages to the business, as a phone would.
#[derive(Debug, Clone)]
pub struct SimUser {
    inner: Arc<Inner>,
    key: String,
}

impl SimUser {
    /// The user's key (phone digits or BSUID).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Moves the user's last message `ago` into the past; `None` forgets it (closes the window).
    pub fn last_wrote(&self, ago: Option<Duration>) {
        let at = ago.map(|ago| self.inner.config.clock.ago(ago));
        self.inner.world().set_last_inbound(&self.key, at);
    }

    /// The user stops marketing messages from the business.
    pub fn stop_marketing(&self) {
        self.inner.world().user(&self.key).stopped_marketing = true;
    }

    /// Sets a username (username-era users may have no phone number at all).
    pub fn set_username(&self, username: &str) {
        self.inner.world().user(&self.key).username = Some(username.to_owned());
    }

    /// Sends a text; returns its wamid.
    pub fn send_text(&self, body: &str) -> String {
        self.send(
            json!({"type": "text", "text": {"body": body}}),
            "text",
            body,
        )
    }

    /// Sends a location pin.
    pub fn send_location(&self, latitude: f64, longitude: f64, name: Option<&str>) -> String {
        let mut location = json!({"latitude": latitude, "longitude": longitude});
        if let Some(name) = name {
            location["name"] = json!(name);
        }
        self.send(
            json!({"type": "location", "location": location}),
            "location",
            &format!("{latitude},{longitude}"),
        )
    }

    /// Sends an image, video, audio, document or sticker (stored so the business can download it).
    pub fn send_media(
        &self,
        kind: MediaKind,
        mime_type: &str,
        bytes: Vec<u8>,
        caption: Option<&str>,
        filename: Option<&str>,
    ) -> (String, String) {
        let (media_id, sha256) = store_media(&self.inner, mime_type, Bytes::from(bytes));
        let mut media = json!({"mime_type": mime_type, "sha256": sha256, "id": media_id});
        if let Some(caption) = caption {
            media["caption"] = json!(caption);
        }
        if kind == MediaKind::Document
            && let Some(filename) = filename
        {
            media["filename"] = json!(filename);
        }
        if kind == MediaKind::Audio {
            media["voice"] = json!(false);
        }
        let wamid = self.send(
            json!({"type": kind.as_str(), kind.as_str(): media}),
            kind.as_str(),
            caption.unwrap_or_default(),
        );
        (wamid, media_id)
    }

    /// Sends a photo or video as a user who came from a click-to-WhatsApp ad or post: the message
    /// carries Meta's `referral` object (`source_id`, `source_type`, `source_url`, `ctwa_clid`).
    pub fn send_media_from_ad(
        &self,
        kind: MediaKind,
        mime_type: &str,
        bytes: Vec<u8>,
        caption: Option<&str>,
        ad_id: &str,
    ) -> (String, String) {
        let (media_id, sha256) = store_media(&self.inner, mime_type, Bytes::from(bytes));
        let mut media = json!({"mime_type": mime_type, "sha256": sha256, "id": media_id});
        if let Some(caption) = caption {
            media["caption"] = json!(caption);
        }
        let referral = json!({
            "source_url": format!("https://fb.me/{ad_id}"),
            "source_id": ad_id,
            "source_type": "ad",
            "headline": "Share your summer",
            "body": "Send us your best shot",
            "media_type": "image",
            "ctwa_clid": format!("clid-{ad_id}"),
        });
        let wamid = self.send(
            json!({"type": kind.as_str(), kind.as_str(): media, "referral": referral}),
            kind.as_str(),
            caption.unwrap_or_default(),
        );
        (wamid, media_id)
    }

    /// Sends media already stored in the simulator ([`Simulator::add_synthetic_media`]), declared
    /// as `mime_type` with the webhook sha256 `sha256` (base64).
    pub fn send_stored_media(
        &self,
        kind: MediaKind,
        media_id: &str,
        mime_type: &str,
        sha256: &str,
        caption: Option<&str>,
    ) -> String {
        let mut media = json!({"mime_type": mime_type, "sha256": sha256, "id": media_id});
        if let Some(caption) = caption {
            media["caption"] = json!(caption);
        }
        self.send(
            json!({"type": kind.as_str(), kind.as_str(): media}),
            kind.as_str(),
            caption.unwrap_or_default(),
        )
    }

    /// Taps a reply button of our interactive message `context_id`.
    pub fn tap_reply_button(&self, context_id: &str, id: &str, title: &str) -> String {
        self.send(
            json!({"type": "interactive", "context": self.context(context_id),
                   "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}}),
            "interactive",
            &format!("tapped {title}"),
        )
    }

    /// Picks a row of our list message `context_id`.
    pub fn pick_list_row(&self, context_id: &str, id: &str, title: &str) -> String {
        self.send(
            json!({"type": "interactive", "context": self.context(context_id),
                   "interactive": {"type": "list_reply", "list_reply": {"id": id, "title": title}}}),
            "interactive",
            &format!("picked {title}"),
        )
    }

    /// Taps a quick-reply button of our template message `context_id`.
    pub fn tap_quick_reply(&self, context_id: &str, payload: &str, text: &str) -> String {
        self.send(
            json!({"type": "button", "context": self.context(context_id),
                   "button": {"payload": payload, "text": text}}),
            "button",
            &format!("tapped {text}"),
        )
    }

    fn context(&self, id: &str) -> Value {
        json!({"from": self.inner.config.display_phone_number, "id": id})
    }

    fn send(&self, mut message: Value, kind: &str, summary: &str) -> String {
        let now = self.inner.config.clock.now();
        let (wamid, contact) = {
            let mut world = self.inner.world();
            let wamid = world.wamid("IN");
            world.touch_inbound(&self.key, now);
            world.inbound.insert(wamid.clone(), self.key.clone());
            world.record(
                &self.key,
                ConversationLine {
                    direction: "in",
                    id: wamid.clone(),
                    kind: kind.to_owned(),
                    summary: summary.to_owned(),
                    status: "received".into(),
                    timestamp: unix_now(),
                },
            );
            let user = world.user(&self.key);
            if let Some(wa_id) = &user.wa_id {
                message["from"] = json!(wa_id);
            }
            if let Some(user_id) = &user.user_id {
                message["from_user_id"] = json!(user_id);
            }
            (wamid, user.contact())
        };
        message["id"] = json!(wamid);
        message["timestamp"] = json!(unix_now().to_string());
        self.inner
            .deliveries
            .push(Item::Message { message, contact });
        wamid
    }
}

/// 64 KiB of deterministic pseudo-random bytes (xorshift), repeated for synthetic media.
/// 64 KiB of noise that starts like a PDF, so synthetic media sniff as a document.
fn synthetic_block() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    block[..9].copy_from_slice(b"%PDF-1.7\n");
    block
}

fn store_media(inner: &Inner, mime_type: &str, bytes: Bytes) -> (String, String) {
    let sha = digest::digest(&digest::SHA256, &bytes);
    let mut world = inner.world();
    let id = format!("{}", 7_000_000_000_000_000 + world.next_id());
    world.media.insert(
        id.clone(),
        Media {
            mime_type: mime_type.to_owned(),
            size: bytes.len() as u64,
            bytes: MediaBytes::Stored(bytes),
            sha256_hex: hex::encode(sha.as_ref()),
            tampered: false,
        },
    );
    (
        id,
        base64::engine::general_purpose::STANDARD.encode(sha.as_ref()),
    )
}

type Shared = Arc<Inner>;

fn router(inner: Shared) -> Router {
    Router::new()
        .route("/sim", get(html_page))
        .route("/sim/conversations", get(conversations))
        .route("/sim/deliveries", get(deliveries))
        .route("/sim/throughput", get(throughput))
        .route("/sim/users/{user}/messages", post(user_action))
        .route("/whatsapp_business/attachments/", get(download))
        .route("/{version}/{id}", get(media_info))
        .route("/{version}/{id}/messages", post(send_message))
        .route("/{version}/{id}/media", post(upload_media))
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates).post(create_template),
        )
        .route("/sim/templates/rejections", post(add_template_rejection))
        .route("/sim/templates/review", post(review_templates))
        .with_state(inner)
}

fn graph_error(inner: &Inner, error: &SimGraphError) -> Response {
    let trace = inner.world().next_id();
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(error.body(trace))).into_response()
}

fn authorize(inner: &Inner, headers: &HeaderMap) -> Result<(), SimGraphError> {
    let expected = format!("Bearer {}", inner.config.access_token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(SimGraphError::token())
    }
}

/// The token, then the version (`v23.0`).
fn guard(inner: &Inner, headers: &HeaderMap, version: &str) -> Result<(), SimGraphError> {
    authorize(inner, headers)?;
    let ok = version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(SimGraphError::new(
            2635,
            "Unknown API version",
            format!("{version} is not a Graph API version"),
        ))
    }
}

async fn send_message(
    State(inner): State<Shared>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(error) = guard(&inner, &headers, &version) {
        return graph_error(&inner, &error);
    }
    if phone_number_id != inner.config.phone_number_id {
        return graph_error(
            &inner,
            &SimGraphError::invalid(format!(
                "Unsupported post request. Object with ID '{phone_number_id}' does not exist"
            )),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(&inner, &SimGraphError::invalid("the body is not JSON"));
    };
    if let Some(Err(violations)) = inner.spec.as_ref().map(|spec| spec.validate_send(&body)) {
        let details: Vec<String> = violations.iter().take(5).map(ToString::to_string).collect();
        return graph_error(&inner, &SimGraphError::invalid(details.join("; ")));
    }
    let fault = {
        let mut world = inner.world();
        match world.fault {
            Some((fault, left)) if left > 0 => {
                world.fault = (left > 1).then(|| (fault, left.saturating_sub(1)));
                Some(fault)
            }
            _ => None,
        }
    };
    if let Some(fault) = fault {
        return match fault.error() {
            Some(error) => graph_error(&inner, &error),
            None => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
        };
    }
    match accept(&inner, &body) {
        Ok(response) => {
            let stall = {
                let mut world = inner.world();
                match world.stall {
                    Some((n, delay)) if n > 0 => {
                        world.stall = (n > 1).then_some((n - 1, delay));
                        Some(delay)
                    }
                    _ => None,
                }
            };
            if let Some(delay) = stall {
                tokio::time::sleep(delay).await;
            }
            (StatusCode::OK, Json(response)).into_response()
        }
        Err(error) => graph_error(&inner, &error),
    }
}

/// Meta's rules for a schema-valid body; schedules the statuses of an accepted message.
fn accept(inner: &Shared, body: &Value) -> Result<Value, SimGraphError> {
    let now = inner.config.clock.now();
    let mut world = inner.world();
    if world.outage_requests > 0 {
        world.outage_requests -= 1;
        return Err(SimGraphError {
            status: 500,
            ..SimGraphError::new(
                131_000,
                "Something went wrong",
                "Message failed to send due to an unknown error.",
            )
        });
    }
    world.take_throughput(now)?;
    if body["messaging_product"] != "whatsapp" {
        return Err(SimGraphError::invalid(
            "messaging_product must be \"whatsapp\"",
        ));
    }
    if body.get("status").is_some() {
        let id = body["message_id"].as_str().unwrap_or_default();
        let Some(key) = world.inbound.get(id).cloned() else {
            return Err(SimGraphError::new(
                131_009,
                "Parameter value is not valid",
                "Message ID is not valid",
            ));
        };
        world.set_status(&key, id, "read");
        return Ok(json!({"success": true}));
    }
    let (input, key) = match (body["to"].as_str(), body["recipient"].as_str()) {
        (Some(to), _) => {
            let digits: String = to.chars().filter(char::is_ascii_digit).collect();
            (
                to.to_owned(),
                if digits.is_empty() {
                    to.to_owned()
                } else {
                    digits
                },
            )
        }
        (None, Some(bsuid)) => (bsuid.to_owned(), bsuid.to_owned()),
        (None, None) => {
            return Err(SimGraphError::new(
                131_008,
                "Required parameter is missing",
                "to",
            ));
        }
    };
    world.take_pair(&key, now)?;
    let is_template = body["type"] == "template";
    if is_template {
        world.check_template(&body["template"])?;
    }
    world.accepted_at.push(now);
    let window_open = world.user(&key).window_open(now);
    let opted_out =
        is_template && world.user(&key).stopped_marketing && world.is_marketing(&body["template"]);
    let wamid = world.wamid("OUT");
    world.outbound.insert(wamid.clone(), key.clone());
    let (kind, summary) = summarize(body);
    world.record(
        &key,
        ConversationLine {
            direction: "out",
            id: wamid.clone(),
            kind,
            summary,
            status: "accepted".into(),
            timestamp: unix_now(),
        },
    );
    let user = world.user(&key).clone();
    drop(world);
    let mut contact = json!({"input": input});
    if let Some(wa_id) = &user.wa_id {
        contact["wa_id"] = json!(wa_id);
    }
    if let Some(user_id) = &user.user_id {
        contact["user_id"] = json!(user_id);
    }
    let callback_data = body["biz_opaque_callback_data"].as_str().map(str::to_owned);
    // Free-form outside the window: accepted now, failed later, as Meta does (131047).
    let outcome = if opted_out {
        Outcome::Fail(131_050)
    } else if is_template || window_open {
        Outcome::Deliver
    } else {
        Outcome::Fail(131_047)
    };
    schedule_statuses(
        Arc::clone(inner),
        wamid.clone(),
        key,
        user,
        outcome,
        callback_data,
        is_template,
    );
    let mut message = json!({ "id": wamid });
    if is_template {
        message["message_status"] = json!("accepted");
    }
    Ok(json!({"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}))
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Deliver,
    Fail(i64),
}

fn schedule_statuses(
    inner: Shared,
    wamid: String,
    key: String,
    user: User,
    outcome: Outcome,
    callback_data: Option<String>,
    is_template: bool,
) {
    let steps: Vec<&'static str> = match outcome {
        Outcome::Fail(_) => vec!["failed"],
        Outcome::Deliver if inner.config.auto_read => vec!["sent", "delivered", "read"],
        Outcome::Deliver => vec!["sent", "delivered"],
    };
    inner.deliveries.reserve(steps.len());
    tokio::spawn(async move {
        for (i, step) in steps.iter().enumerate() {
            tokio::time::sleep(inner.config.status_delay).await;
            let mut status = json!({
                "id": wamid, "status": step, "timestamp": unix_now().to_string(),
            });
            if let Some(wa_id) = &user.wa_id {
                status["recipient_id"] = json!(wa_id);
            }
            if let Some(user_id) = &user.user_id {
                status["recipient_user_id"] = json!(user_id);
            }
            if let Some(data) = &callback_data {
                status["biz_opaque_callback_data"] = json!(data);
            }
            let contact = match outcome {
                Outcome::Fail(code) => {
                    let (title, details) = if code == 131_050 {
                        (
                            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
                            "User stopped marketing messages.",
                        )
                    } else {
                        (
                            "Re-engagement message",
                            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
                        )
                    };
                    status["errors"] = json!([{
                        "code": code, "title": title, "message": title,
                        "error_data": {"details": details},
                        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
                    }]);
                    // Failed statuses omit the contacts block.
                    None
                }
                Outcome::Deliver => {
                    if i == 0 {
                        let (kind, category) = if is_template {
                            ("regular", "utility")
                        } else {
                            ("free_customer_service", "service")
                        };
                        status["pricing"] = json!({"billable": is_template, "pricing_model": "PMP", "type": kind, "category": category});
                    }
                    Some(user.contact())
                }
            };
            let label = match outcome {
                Outcome::Fail(code) => format!("failed:{code}"),
                Outcome::Deliver => (*step).to_owned(),
            };
            inner.world().set_status(&key, &wamid, &label);
            inner
                .deliveries
                .push_reserved(Item::Status { status, contact });
        }
    });
}

async fn media_info(
    State(inner): State<Shared>,
    Path((version, media_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = guard(&inner, &headers, &version) {
        return graph_error(&inner, &error);
    }
    let mut world = inner.world();
    let Some(media) = world.media.get(&media_id).cloned() else {
        drop(world);
        return graph_error(
            &inner,
            &SimGraphError::invalid(format!(
                "Unsupported get request. Object with ID '{media_id}' does not exist"
            )),
        );
    };
    let ticket = format!(
        "AR{:016x}",
        world.next_id().wrapping_mul(0x9E37_79B9_7F4A_7C15)
    );
    let now = inner.config.clock.now();
    let expires = if std::mem::take(&mut world.expire_next_url) {
        inner.config.clock.ago(Duration::from_secs(1))
    } else {
        now + inner.config.download_url_ttl
    };
    world
        .tickets
        .insert(ticket.clone(), (media_id.clone(), expires));
    drop(world);
    let ext = unix_now() + inner.config.download_url_ttl.as_secs();
    Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/whatsapp_business/attachments/?mid={media_id}&ext={ext}&hash={ticket}", inner.base_url),
        "mime_type": media.mime_type,
        "sha256": media.sha256_hex,
        "file_size": media.size,
        "id": media_id,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DownloadQuery {
    #[serde(default)]
    mid: String,
    #[serde(default)]
    hash: String,
}

async fn download(
    State(inner): State<Shared>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = authorize(&inner, &headers) {
        return graph_error(&inner, &error);
    }
    let media = {
        let world = inner.world();
        match world.tickets.get(&query.hash) {
            Some((mid, expires)) if *mid == query.mid && *expires > inner.config.clock.now() => {
                world.media.get(mid).cloned()
            }
            _ => None,
        }
    };
    // Expired or unknown URLs answer 404, as the lookaside host does.
    let Some(media) = media else {
        return (StatusCode::NOT_FOUND, "URL signature expired").into_response();
    };
    let body = match media.bytes {
        MediaBytes::Stored(bytes) => {
            let mut bytes = bytes.to_vec();
            if media.tampered
                && let Some(first) = bytes.first_mut()
            {
                *first ^= 0xff;
            }
            Body::from(bytes)
        }
        MediaBytes::Synthetic { size } => synthetic_body(size, media.tampered),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media.mime_type)
        .header(header::CONTENT_LENGTH, media.size)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn synthetic_body(size: u64, tampered: bool) -> Body {
    let block = Bytes::from(synthetic_block());
    let stream = futures::stream::unfold((0_u64, true), move |(sent, first)| {
        let block = block.clone();
        async move {
            if sent >= size {
                return None;
            }
            let n = (size - sent).min(block.len() as u64) as usize;
            let chunk = if first && tampered {
                let mut owned = block[..n].to_vec();
                if let Some(b) = owned.first_mut() {
                    *b ^= 0xff;
                }
                Bytes::from(owned)
            } else {
                block.slice(..n)
            };
            Some((Ok::<_, std::io::Error>(chunk), (sent + n as u64, false)))
        }
    });
    Body::from_stream(stream)
}

async fn upload_media(
    State(inner): State<Shared>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(error) = guard(&inner, &headers, &version) {
        return graph_error(&inner, &error);
    }
    if phone_number_id != inner.config.phone_number_id {
        return graph_error(&inner, &SimGraphError::invalid("unknown phone number id"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(parts) = crate::multipart::parse(content_type, &body) else {
        return graph_error(
            &inner,
            &SimGraphError::invalid("expected multipart/form-data"),
        );
    };
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    if field("messaging_product").map(|p| p.data.as_slice()) != Some(b"whatsapp") {
        return graph_error(
            &inner,
            &SimGraphError::new(100, "Invalid parameter", "messaging_product is required"),
        );
    }
    let Some(file) = field("file") else {
        return graph_error(
            &inner,
            &SimGraphError::new(100, "Invalid parameter", "file is required"),
        );
    };
    let mime = file
        .content_type
        .clone()
        .or_else(|| field("type").map(|p| String::from_utf8_lossy(&p.data).into_owned()))
        .unwrap_or_default();
    let kind = [
        MediaKind::Image,
        MediaKind::Video,
        MediaKind::Audio,
        MediaKind::Document,
        MediaKind::Sticker,
    ]
    .into_iter()
    .find(|k| k.accepts_mime(&mime));
    let Some(kind) = kind else {
        return graph_error(
            &inner,
            &SimGraphError::invalid(format!(
                "Param file must be a file with one of the supported types, not {mime}"
            )),
        );
    };
    if file.data.len() as u64 > kind.max_bytes() {
        return graph_error(
            &inner,
            &SimGraphError::invalid(format!(
                "the {} exceeds {} bytes",
                kind.as_str(),
                kind.max_bytes()
            )),
        );
    }
    let (id, _) = store_media(&inner, &mime, Bytes::from(file.data.clone()));
    Json(json!({ "id": id })).into_response()
}

#[derive(Debug, Deserialize)]
struct TemplateListQuery {
    name: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Meta's default page size for template lists.
const TEMPLATE_PAGE: usize = 25;

fn check_waba(inner: &Inner, method: &str, waba_id: &str) -> Result<(), SimGraphError> {
    if waba_id == inner.config.waba_id {
        Ok(())
    } else {
        Err(SimGraphError::invalid(format!(
            "Unsupported {method} request. Object with ID '{waba_id}' does not exist"
        )))
    }
}

async fn list_templates(
    State(inner): State<Shared>,
    Path((version, waba_id)): Path<(String, String)>,
    Query(query): Query<TemplateListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) =
        guard(&inner, &headers, &version).and_then(|()| check_waba(&inner, "get", &waba_id))
    {
        return graph_error(&inner, &error);
    }
    let world = inner.world();
    let submitted_key = |name: &str, language: &str| {
        world
            .submitted
            .iter()
            .any(|t| t.request.name == name && t.request.language == language)
    };
    // Templates given at start are listed as before; submitted ones as Meta lists them, with
    // their components, review status and rejection reason.
    let mut data: Vec<Value> = world
        .templates
        .iter()
        .enumerate()
        .filter(|(_, t)| !submitted_key(&t.name, &t.language))
        .map(|(i, t)| json!({"id": format!("{}", 1_500_000_000_000_000_u64 + i as u64),
                        "name": t.name, "language": t.language, "status": "APPROVED", "category": t.category,
                        "header": t.header, "body_parameters": t.body_params, "buttons": t.buttons}))
        .collect();
    data.extend(world.submitted.iter().map(|t| {
        let mut entry = t.request.to_request();
        entry["id"] = json!(t.id);
        entry["status"] = json!(t.status.as_str());
        if let ReviewStatus::Rejected(reason) = &t.status {
            entry["rejected_reason"] = json!(reason);
        }
        entry
    }));
    drop(world);
    if let Some(name) = &query.name {
        data.retain(|t| t["name"] == name.as_str());
    }
    let limit = query.limit.unwrap_or(TEMPLATE_PAGE).clamp(1, 1000);
    let from = query
        .after
        .as_deref()
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0)
        .min(data.len());
    let to = (from + limit).min(data.len());
    let mut paging = json!({"cursors": {"before": from.to_string(), "after": to.to_string()}});
    if to < data.len() {
        let mut next = format!(
            "{}/{version}/{waba_id}/message_templates?limit={limit}&after={to}",
            inner.base_url
        );
        if let Some(name) = &query.name {
            next.push_str(&format!("&name={name}"));
        }
        paging["next"] = json!(next);
    }
    let page: Vec<Value> = data.drain(from..to).collect();
    Json(json!({ "data": page, "paging": paging })).into_response()
}

async fn create_template(
    State(inner): State<Shared>,
    Path((version, waba_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(error) =
        guard(&inner, &headers, &version).and_then(|()| check_waba(&inner, "post", &waba_id))
    {
        return graph_error(&inner, &error);
    }
    let request: shared::templates::Template =
        match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)) {
            Ok(request) => request,
            Err(e) => {
                let at = e.path().to_string();
                return graph_error(
                    &inner,
                    &SimGraphError::invalid(format!("{at}: {}", e.into_inner())),
                );
            }
        };
    let mut world = inner.world();
    match world.submit_template(request) {
        Ok(t) => {
            let answer =
                json!({"id": t.id, "status": t.status.as_str(), "category": t.request.category});
            drop(world);
            Json(answer).into_response()
        }
        Err(error) => {
            drop(world);
            graph_error(&inner, &error)
        }
    }
}

#[derive(Debug, Deserialize)]
struct RejectionRule {
    name: String,
    reason: String,
}

/// `POST /sim/templates/rejections {"name", "reason"}`: the review rejects that template.
async fn add_template_rejection(
    State(inner): State<Shared>,
    Json(rule): Json<RejectionRule>,
) -> Response {
    inner
        .world()
        .review_rejections
        .insert(rule.name, rule.reason);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /sim/templates/review`: completes every pending review.
async fn review_templates(State(inner): State<Shared>) -> Response {
    let reviewed = inner.world().review_templates();
    Json(json!({ "reviewed": reviewed })).into_response()
}

async fn conversations(State(inner): State<Shared>) -> Response {
    let users: HashMap<String, User> = inner.world().users.clone().into_iter().collect();
    Json(json!({ "users": users })).into_response()
}

async fn throughput(State(inner): State<Shared>) -> Response {
    let world = inner.world();
    Json(json!({
        "phone_number_id": inner.config.phone_number_id,
        "accepted": world.accepted_at.len(),
        "max_per_second": crate::world::most_in_any_second(&world.accepted_at),
    }))
    .into_response()
}

async fn deliveries(State(inner): State<Shared>) -> Response {
    Json(json!({ "deliveries": inner.deliveries.records() })).into_response()
}

/// What a user can do through the control API.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserAction {
    /// A text.
    Text {
        /// Body.
        body: String,
    },
    /// A location pin.
    Location {
        /// Degrees.
        latitude: f64,
        /// Degrees.
        longitude: f64,
        /// Place name.
        #[serde(default)]
        name: Option<String>,
    },
    /// Media, base64 in the request.
    Media {
        /// `image`, `video`, `audio`, `document`, `sticker`.
        kind: String,
        /// MIME type.
        mime_type: String,
        /// The bytes, base64.
        data_base64: String,
        /// Caption.
        #[serde(default)]
        caption: Option<String>,
        /// Document file name.
        #[serde(default)]
        filename: Option<String>,
    },
    /// A reply-button tap.
    ButtonReply {
        /// Our interactive message.
        context_id: String,
        /// Button id.
        id: String,
        /// Button title.
        title: String,
    },
    /// A list row choice.
    ListReply {
        /// Our list message.
        context_id: String,
        /// Row id.
        id: String,
        /// Row title.
        title: String,
    },
    /// A template quick-reply tap.
    QuickReply {
        /// Our template message.
        context_id: String,
        /// Payload we set.
        payload: String,
        /// Button label.
        text: String,
    },
}

async fn user_action(
    State(inner): State<Shared>,
    Path(user): Path<String>,
    Json(action): Json<UserAction>,
) -> Response {
    let key: String = if user.contains('.') {
        user
    } else {
        user.chars().filter(char::is_ascii_digit).collect()
    };
    inner.world().user(&key);
    let sim_user = SimUser {
        inner: Arc::clone(&inner),
        key,
    };
    let id = match action {
        UserAction::Text { body } => sim_user.send_text(&body),
        UserAction::Location {
            latitude,
            longitude,
            name,
        } => sim_user.send_location(latitude, longitude, name.as_deref()),
        UserAction::Media {
            kind,
            mime_type,
            data_base64,
            caption,
            filename,
        } => {
            let (Some(kind), Ok(bytes)) = (
                MediaKind::parse(&kind),
                base64::engine::general_purpose::STANDARD.decode(data_base64),
            ) else {
                return (StatusCode::BAD_REQUEST, "unknown media kind or bad base64")
                    .into_response();
            };
            sim_user
                .send_media(
                    kind,
                    &mime_type,
                    bytes,
                    caption.as_deref(),
                    filename.as_deref(),
                )
                .0
        }
        UserAction::ButtonReply {
            context_id,
            id,
            title,
        } => sim_user.tap_reply_button(&context_id, &id, &title),
        UserAction::ListReply {
            context_id,
            id,
            title,
        } => sim_user.pick_list_row(&context_id, &id, &title),
        UserAction::QuickReply {
            context_id,
            payload,
            text,
        } => sim_user.tap_quick_reply(&context_id, &payload, &text),
    };
    Json(json!({ "id": id })).into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn html_page(State(inner): State<Shared>) -> Html<String> {
    let world = inner.world();
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>WhatsApp simulator</title>\
         <style>body{font-family:sans-serif;max-width:60em;margin:auto}.in{color:#064}.out{color:#036}td{padding:2px 8px}</style>\
         </head><body><h1>WhatsApp simulator</h1>",
    );
    for (key, user) in &world.users {
        page.push_str(&format!(
            "<h2>{} ({})</h2><table>",
            escape_html(&user.name),
            escape_html(key)
        ));
        for line in &user.lines {
            page.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                line.direction,
                if line.direction == "in" {
                    "user →"
                } else {
                    "← business"
                },
                escape_html(&line.kind),
                escape_html(&line.summary),
                escape_html(&line.status),
            ));
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>");
    Html(page)
}
