//! An Orange Logic simulator on loopback, at least as strict as the real service where its
//! documentation and public integrations show how it behaves (see docs/orange-logic.md, "The
//! simulator"): OAuth2 client credentials and static bearer tokens, Search v4.0 with paging and
//! sorting, DataTable v2.2 read / update / create on the documented resources and keys only,
//! UploadNewMedia v3.0 streamed with a size limit, share links, deleted objects, XML unless
//! `format=json`, failures inside HTTP 200 in the documented shapes, 403 on GET URLs over the
//! documented 260 characters, folders by RecordID only; webhooks on create / edit / delete with
//! unique event ids and up to five retries; seeding from a file and a generator.
//!
//! Switches per test ([`Behaviour`]): no `GlobalInfo`, an HTML login page or a redirect for an
//! expired session, display-format dates in the instance's time zone, `Retry-After` as an HTTP
//! date, a `pagenumber` that is ignored (an endless `NextPage`); faults: the next calls failing
//! with given statuses, the next calls never answered, slow answers.

mod http_api;
pub mod store;
pub mod xml;

pub use store::{Asset, Change, Clock, DateStyle, Deletion, Folder, Op, Query, Store, UpdateError};

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The header carrying the webhook's shared secret, unless configured otherwise.
pub const DEFAULT_WEBHOOK_HEADER: &str = "x-dam-webhook-secret";

/// How the token endpoint spells the token (sources disagree; the client must accept both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStyle {
    /// `access_token`.
    SnakeCase,
    /// `accessToken`.
    CamelCase,
}

/// What an expired or unknown token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// HTTP 401 (the documented answer).
    Status401,
    /// An HTML login page inside HTTP 200, as a web front does.
    HtmlLoginPage,
    /// A 302 redirect to the login page.
    RedirectToLogin,
}

/// How `Retry-After` is written on 429 and 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterStyle {
    /// Delay-seconds.
    Seconds(u64),
    /// An HTTP date this many seconds ahead.
    HttpDate(u64),
}

/// Behaviours a test switches on (all off by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// `GlobalInfo` (TotalCount, NextPage) in search answers; accounts without the "Search API -
    /// Allow search on all documents" security function get none.
    pub global_info: bool,
    /// What an expired token gets.
    pub session_expiry: SessionExpiry,
    /// Dates in answers: ISO (default) or the display format, in the instance's time zone.
    pub date_style: DateStyle,
    /// `Retry-After` on injected 429 and 503.
    pub retry_after: RetryAfterStyle,
    /// Every search answers page 1 with a `NextPage`, whatever `pagenumber` says.
    pub ignore_page_number: bool,
    /// `format=json` is dropped (as by a proxy or a web front): every legacy answer is XML.
    pub drop_format_parameter: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            global_info: true,
            session_expiry: SessionExpiry::Status401,
            date_style: DateStyle::Iso,
            retry_after: RetryAfterStyle::Seconds(1),
            ignore_page_number: false,
            drop_format_parameter: false,
        }
    }
}

/// The simulated instance's configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// OAuth client ids and secrets accepted by the token endpoint.
    pub clients: Vec<(String, String)>,
    /// Non-expiring bearer tokens accepted as they are.
    pub static_tokens: Vec<String>,
    /// Token answer spelling.
    pub token_style: TokenStyle,
    /// GET URLs longer than this get 403 (Orange Logic's "URL too long"; documented ≈260).
    pub max_url_len: usize,
    /// Uploads larger than this get 413, detected while streaming.
    pub max_upload_bytes: u64,
    /// Search page size cap.
    pub max_per_page: usize,
    /// Custom fields of the instance (`Custom.Campaign` ...).
    pub custom_fields: Vec<String>,
    /// Fields whose values come from a list.
    pub allowed_values: BTreeMap<String, Vec<String>>,
    /// Retries of a failed webhook delivery.
    pub webhook_retries: u32,
    /// First retry delay (doubles each retry).
    pub webhook_retry_delay: Duration,
    /// IANA name of the instance's time zone (dates without offset are local to it).
    pub time_zone: String,
    /// Fields the instance spells differently from the usual (`CoreField.photographer`).
    pub field_spellings: Vec<String>,
    /// The rendition formats the instance has (GetLink's `Format`); a link in another is refused.
    pub formats: Vec<String>,
    /// Switches.
    pub behaviour: Behaviour,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            clients: vec![("connector-local".into(), "local-orange-logic-secret".into())],
            static_tokens: Vec::new(),
            token_style: TokenStyle::SnakeCase,
            max_url_len: 260,
            max_upload_bytes: 256 * 1024 * 1024,
            max_per_page: 100,
            custom_fields: [
                "Custom.Approvers",
                "Custom.Campaign",
                "Custom.LicenceEnd",
                "Custom.Region",
                "Custom.BrandCompliant",
                "Custom.WhatsAppLog",
                "Custom.ReviewDeadline",
                "Custom.Contributor",
                "Custom.SenderPseudonym",
                "Custom.Location",
                "Custom.ReceivedAt",
                "Custom.WhatsAppMessageId",
                "Custom.OriginalFileName",
                "Custom.PackageAssets",
                "Custom.UgcSource",
                "Custom.UgcConsent",
            ]
            .map(String::from)
            .to_vec(),
            allowed_values: [(
                "CoreField.Status".to_owned(),
                [
                    "Draft",
                    "Ready for Review",
                    "Approved",
                    "Rejected",
                    "Blocked by Policy",
                    "Field review",
                ]
                .map(String::from)
                .to_vec(),
            )]
            .into(),
            webhook_retries: 5,
            webhook_retry_delay: Duration::from_millis(100),
            time_zone: "UTC".into(),
            field_spellings: Vec::new(),
            formats: ["TRX", "TR1", "TR4", "TR7"].map(String::from).to_vec(),
            behaviour: Behaviour::default(),
        }
    }
}

/// Where webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Subscriber URL.
    pub url: String,
    /// Header carrying the secret.
    pub header: String,
    /// The shared secret.
    pub secret: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event id.
    pub event_id: String,
    /// 1-based attempt.
    pub attempt: u32,
    /// HTTP status, or `None` when the subscriber could not be reached or the event was dropped.
    pub status: Option<u16>,
}

#[derive(Debug, Default)]
struct Faults {
    unavailable_until: Option<Instant>,
    latency: Duration,
    fail_next: Vec<u16>,
    hang_next: usize,
    /// Uploads answered with this status, and whether the file was stored first (a gateway
    /// timing out after the backend took it), one per entry.
    fail_uploads: Vec<(u16, bool)>,
}

/// One API call received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, lower case.
    pub path: String,
    /// Length of the whole URL (path and query string).
    pub url_len: usize,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

#[derive(Debug, Default)]
struct Webhooks {
    target: Option<WebhookTarget>,
    drop: bool,
    duplicate: bool,
}

/// Counters tests assert on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Tokens issued by the token endpoint.
    pub tokens_issued: usize,
    /// API answers by status.
    pub statuses: BTreeMap<u16, usize>,
    /// Search calls served.
    pub searches: usize,
    /// Search calls made by following a `NextPage.href` (they carry its continuation token).
    pub next_pages_followed: usize,
    /// Largest upload received, bytes.
    pub largest_upload: u64,
    /// Every API call, in arrival order (the token endpoint excluded).
    pub calls: Vec<CallRecord>,
    /// The instants written into `Retry-After` HTTP dates.
    pub retry_after_dates: Vec<std::time::SystemTime>,
}

impl Stats {
    /// The calls to paths containing `fragment` (lower case).
    pub fn calls_to(&self, fragment: &str) -> Vec<&CallRecord> {
        self.calls
            .iter()
            .filter(|c| c.path.contains(fragment))
            .collect()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct WebhookEvent {
    #[serde(rename = "eventId")]
    event_id: String,
    topic: &'static str,
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(rename = "occurredAt")]
    occurred_at: String,
}

/// A search's result set: query text, store generation, matching RecordIDs.
type CachedSearch = (String, u64, Arc<Vec<String>>);

/// Shared state of a running simulator.
#[derive(Debug)]
pub(crate) struct Inner {
    config: SimConfig,
    base_url: String,
    store: Mutex<Store>,
    tokens: Mutex<BTreeSet<String>>,
    faults: Mutex<Faults>,
    webhooks: Mutex<Webhooks>,
    deliveries: Mutex<Vec<Delivery>>,
    stats: Mutex<Stats>,
    behaviour: Mutex<Behaviour>,
    links: Mutex<BTreeMap<String, (String, String, String)>>,
    /// The last search: query text, store generation, matching RecordIDs.
    search_cache: Mutex<Option<CachedSearch>>,
    outbox: mpsc::UnboundedSender<WebhookEvent>,
    in_flight: AtomicUsize,
    sequence: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, as Orange Logic formats dates by default (`yyyy-MM-ddTHH:mm:ss`, UTC here).
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

fn random_hex(bytes: usize) -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut buffer = vec![0_u8; bytes];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut buffer);
    hex::encode(buffer)
}

impl Inner {
    /// The store for a change: the clock is set and cached search results are invalidated.
    fn store(&self) -> MutexGuard<'_, Store> {
        let mut store = lock(&self.store);
        store.now = now();
        store.generation += 1;
        store
    }

    /// The store for reading, with the date style switched on now.
    fn read_store(&self) -> MutexGuard<'_, Store> {
        let style = lock(&self.behaviour).date_style;
        let mut store = lock(&self.store);
        store.clock.style = style;
        store
    }

    fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    fn announce(&self, change: Change) {
        let (topic, record_id) = match change {
            Change::Created(id) => ("asset.created", id),
            Change::Edited(id) => ("asset.edited", id),
            Change::Deleted(id) => ("asset.deleted", id),
        };
        if lock(&self.webhooks).target.is_none() {
            return;
        }
        let n = self.sequence.fetch_add(1, Ordering::SeqCst);
        let event = WebhookEvent {
            event_id: format!("evt-{n}-{}", random_hex(6)),
            topic,
            record_id,
            occurred_at: now(),
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.outbox.send(event).is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn issue_token(&self) -> String {
        let token = format!("sim-{}", random_hex(16));
        lock(&self.tokens).insert(token.clone());
        lock(&self.stats).tokens_issued += 1;
        token
    }

    fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens).contains(token) || self.config.static_tokens.iter().any(|t| t == token)
    }
}

/// A running simulator; dropping it stops the server and the webhook sender.
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

/// A seed document: folders (as paths) and assets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Folders.
    #[serde(default)]
    pub folders: Vec<SeedFolder>,
    /// Assets.
    #[serde(default)]
    pub assets: Vec<SeedAsset>,
}

/// A folder to create, with the folders above it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFolder {
    /// Titles from the top, separated by `/` (`Projects/Bridge/Field`).
    pub path: String,
}

/// An asset to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAsset {
    /// Folder path.
    #[serde(default)]
    pub folder: Option<String>,
    /// Field values.
    pub fields: BTreeMap<String, String>,
}

impl Simulator {
    /// Serves on `addr` (`127.0.0.1:0` picks a port).
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (outbox, inbox) = mpsc::unbounded_channel();
        let mut store = Store::new(
            config.custom_fields.iter().cloned().collect(),
            config
                .allowed_values
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                .collect(),
            &config.field_spellings,
        );
        store.clock.zone = jiff::tz::TimeZone::get(&config.time_zone).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unknown time zone {}", config.time_zone),
            )
        })?;
        store.now = now();
        let behaviour = config.behaviour.clone();
        let inner = Arc::new(Inner {
            config,
            base_url: format!("http://{addr}"),
            store: Mutex::new(store),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            webhooks: Mutex::default(),
            deliveries: Mutex::default(),
            stats: Mutex::default(),
            behaviour: Mutex::new(behaviour),
            links: Mutex::default(),
            search_cache: Mutex::default(),
            outbox,
            in_flight: AtomicUsize::new(0),
            sequence: AtomicU64::new(1),
        });
        let app = http_api::router(Arc::clone(&inner));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "Orange Logic simulator stopped");
            }
        });
        let sender = tokio::spawn(deliver_webhooks(Arc::clone(&inner), inbox));
        Ok(Self {
            inner,
            addr,
            tasks: vec![server, sender],
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends webhooks to `target` from now on.
    pub fn subscribe(&self, target: WebhookTarget) {
        lock(&self.inner.webhooks).target = Some(target);
    }

    /// Loses every webhook from now on (`true`) or delivers them again (`false`).
    pub fn drop_webhooks(&self, drop: bool) {
        lock(&self.inner.webhooks).drop = drop;
    }

    /// Delivers every webhook twice with the same event id (a redelivery after a lost answer).
    pub fn duplicate_webhooks(&self, duplicate: bool) {
        lock(&self.inner.webhooks).duplicate = duplicate;
    }

    /// Waits until every announced webhook has been delivered, retried out or dropped.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.inner.in_flight.load(Ordering::SeqCst) > 0 {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Every delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.inner.deliveries).clone()
    }

    /// Answers 503 to every API call for `duration`.
    pub fn unavailable_for(&self, duration: Duration) {
        lock(&self.inner.faults).unavailable_until = Some(Instant::now() + duration);
    }

    /// Delays every answer by `latency`.
    pub fn slow(&self, latency: Duration) {
        lock(&self.inner.faults).latency = latency;
    }

    /// The next API calls answer these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.inner.faults).fail_next = statuses.iter().rev().copied().collect();
    }

    /// The next `n` API calls answer `status`.
    pub fn fail_next_n(&self, status: u16, n: usize) {
        self.fail_next(&vec![status; n]);
    }

    /// The next `n` API calls are never answered (the client's timeout decides).
    pub fn hang_next(&self, n: usize) {
        lock(&self.inner.faults).hang_next = n;
    }

    /// The next upload is stored and then answered with `status` (a proxy timing out after the
    /// instance took the file): the client sees a failure, the asset exists.
    pub fn fail_next_upload_after_storing(&self, status: u16) {
        lock(&self.inner.faults)
            .fail_uploads
            .insert(0, (status, true));
    }

    /// The next upload is answered with `status` without being stored (other calls are not affected).
    pub fn fail_next_upload(&self, status: u16) {
        lock(&self.inner.faults)
            .fail_uploads
            .insert(0, (status, false));
    }

    /// Changes the switches from now on.
    pub fn set_behaviour(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut lock(&self.inner.behaviour));
    }

    /// Adds a file version to an asset, as "upload new version" in the UI would (announced as an
    /// edit); returns the new version number.
    pub fn new_version(&self, record_id: &str, file_name: &str) -> Option<u32> {
        let number = self.inner.store().new_version(record_id, file_name)?;
        self.inner.announce(Change::Edited(record_id.to_owned()));
        Some(number)
    }

    /// The folder at a path of titles, if it exists.
    pub fn folder_at(&self, path: &str) -> Option<Folder> {
        lock(&self.inner.store).find_folder_path(path).cloned()
    }

    /// Every folder.
    pub fn folders(&self) -> Vec<Folder> {
        lock(&self.inner.store).folders.values().cloned().collect()
    }

    /// Forgets every issued token (a fail-over to another server): the next call gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.inner.tokens).clear();
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Adds a top-level folder; returns its RecordID.
    pub fn add_folder(&self, title: &str) -> String {
        self.inner.store().add_folder(title, None)
    }

    /// Adds the folders of a path of titles (`Projects/Bridge/Field`) that are missing; returns
    /// the last one's RecordID.
    pub fn add_folder_path(&self, path: &str) -> String {
        self.inner.store().folder_path(path)
    }

    /// Adds an asset as an upload in the UI would (announced by webhook); returns its RecordID.
    pub fn add_asset(&self, fields: &[(&str, &str)]) -> String {
        let id = self.inner.store().add_asset(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self.inner.announce(Change::Created(id.clone()));
        id
    }

    /// Sets a field as a user in the UI would (announced by webhook).
    pub fn edit(&self, record_id: &str, field: &str, value: &str) -> Result<(), UpdateError> {
        self.inner
            .store()
            .update(record_id, &[(field.to_owned(), Op::Set, value.to_owned())])?;
        self.inner.announce(Change::Edited(record_id.to_owned()));
        Ok(())
    }

    /// Deletes an asset (announced by webhook, listed by the deleted-objects API).
    pub fn delete(&self, record_id: &str) -> bool {
        let removed = self.inner.store().delete(record_id);
        if removed {
            self.inner.announce(Change::Deleted(record_id.to_owned()));
        }
        removed
    }

    /// A copy of an asset.
    pub fn asset(&self, record_id: &str) -> Option<Asset> {
        lock(&self.inner.store).assets.get(record_id).cloned()
    }

    /// The asset with this unique identifier.
    pub fn asset_by_identifier(&self, identifier: &str) -> Option<Asset> {
        lock(&self.inner.store)
            .find("CoreField.Identifier", identifier)
            .cloned()
    }

    /// Every asset, in RecordID order.
    pub fn assets(&self) -> Vec<Asset> {
        lock(&self.inner.store).assets.values().cloned().collect()
    }

    /// Number of assets.
    pub fn asset_count(&self) -> usize {
        lock(&self.inner.store).assets.len()
    }

    /// Loads a seed document (JSON) without announcing anything.
    pub fn seed(&self, seed: &Seed) -> Result<usize, UpdateError> {
        let mut store = self.inner.store();
        for folder in &seed.folders {
            store.folder_path(&folder.path);
        }
        for asset in &seed.assets {
            let mut fields = asset.fields.clone();
            if let Some(folder) = &asset.folder {
                let id = store
                    .find_folder_path(folder)
                    .map(|f| f.record_id.clone())
                    .ok_or_else(|| UpdateError::NoFolder(folder.clone()))?;
                fields.insert("CoreField.Parent-folder".into(), id);
            }
            store.add_asset(fields);
        }
        Ok(seed.assets.len())
    }

    /// Loads a seed file.
    pub fn seed_file(&self, path: &std::path::Path) -> anyhow::Result<usize> {
        let seed: Seed = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        Ok(self.seed(&seed)?)
    }

    /// Adds `count` synthetic assets (deterministic for a `seed`) spread over 50 folders, with
    /// statuses, campaigns, regions, expiry dates and edit dates over the past year.
    pub fn generate(&self, count: usize, seed: u64) -> usize {
        self.generate_with(count, seed, 2026)
    }

    /// [`Simulator::generate`] with expiry dates spread over the three years from
    /// `first_expiry_year` (a catalogue whose rights all end after a given year).
    pub fn generate_with(&self, count: usize, seed: u64, first_expiry_year: u64) -> usize {
        let statuses = [
            "Draft",
            "Ready for Review",
            "Approved",
            "Rejected",
            "Blocked by Policy",
        ];
        let regions = ["EMEA", "NA", "LATAM", "APAC"];
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut next = move |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound.max(1)
        };
        let mut store = self.inner.store();
        let folders: Vec<String> = (0..50)
            .map(|i| store.folder_path(&format!("Generated/Folder {i:02}")))
            .collect();
        for i in 0..count {
            let month = 1 + next(12);
            let day = 1 + next(28);
            let fields: BTreeMap<String, String> = [
                ("CoreField.Title", format!("Synthetic asset {i}")),
                (
                    "CoreField.Photographer",
                    format!("Photographer {}", next(400)),
                ),
                ("CoreField.Status", statuses[next(5) as usize].to_owned()),
                ("Custom.Campaign", format!("CAMPAIGN-{:02}", next(20))),
                ("Custom.Region", regions[next(4) as usize].to_owned()),
                (
                    "CoreField.ExpirationDate",
                    format!(
                        "{}-{month:02}-{day:02}T00:00:00",
                        first_expiry_year + next(3)
                    ),
                ),
                (
                    "CoreField.EditDate",
                    format!(
                        "2026-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                        next(24),
                        next(60),
                        next(60)
                    ),
                ),
                (
                    "CoreField.Parent-folder",
                    folders[next(folders.len() as u64) as usize].clone(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            store.add_asset(fields);
        }
        count
    }
}

async fn deliver_webhooks(inner: Arc<Inner>, mut inbox: mpsc::UnboundedReceiver<WebhookEvent>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(event) = inbox.recv().await {
        let (target, drop, duplicate) = {
            let webhooks = lock(&inner.webhooks);
            (webhooks.target.clone(), webhooks.drop, webhooks.duplicate)
        };
        match target {
            Some(target) if !drop => {
                let copies = if duplicate { 2 } else { 1 };
                for _ in 0..copies {
                    deliver(&inner, &client, &target, &event).await;
                }
            }
            _ => lock(&inner.deliveries).push(Delivery {
                event_id: event.event_id.clone(),
                attempt: 0,
                status: None,
            }),
        }
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn deliver(
    inner: &Inner,
    client: &reqwest::Client,
    target: &WebhookTarget,
    event: &WebhookEvent,
) {
    let body = serde_json::json!({ "events": [event] }).to_string();
    let mut delay = inner.config.webhook_retry_delay;
    for attempt in 1..=inner.config.webhook_retries + 1 {
        let status = client
            .post(&target.url)
            .header(&target.header, &target.secret)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        lock(&inner.deliveries).push(Delivery {
            event_id: event.event_id.clone(),
            attempt,
            status,
        });
        if status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::warn!(event_id = %event.event_id, "webhook given up after every retry");
}
