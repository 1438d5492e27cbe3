//! Webhook delivery as Meta does it: signed POSTs to the callback URL, retried after a non-200,
//! with switches for duplicates, out-of-order delivery and batching several items in one POST.

use serde::Serialize;
use serde_json::{Value, json};
use shared::secrets::Secret;
use shared::whatsapp::signature::AppSecretKeys;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct DeliverySwitches {
    /// POST every notification twice (Meta: "can result in duplicate webhook notifications").
    pub duplicates: bool,
    /// Deliver the items gathered in one window in reverse order.
    pub out_of_order: bool,
    /// Items per POST (1: one item per notification; Meta batches up to 1000).
    pub batch_size: usize,
    /// How long to gather items before a POST when batching or reordering (in real time; tests
    /// gather deterministically with `Simulator::hold_deliveries` instead).
    pub gather_window: Duration,
    /// First delay before redelivering after a non-200; doubles per attempt.
    pub retry_delay: Duration,
    /// Attempts per notification before it is dropped (Meta: days; here a few).
    pub max_attempts: u32,
}

impl Default for DeliverySwitches {
    fn default() -> Self {
        Self {
            duplicates: false,
            out_of_order: false,
            batch_size: 1,
            gather_window: Duration::from_millis(50),
            retry_delay: Duration::from_millis(200),
            max_attempts: 5,
        }
    }
}

/// One webhook item waiting for delivery.
#[derive(Debug, Clone)]
pub enum Item {
    /// An inbound message and its sender's contact.
    Message {
        /// `messages[]` entry.
        message: Value,
        /// `contacts[]` entry.
        contact: Value,
    },
    /// A status of one of our messages.
    Status {
        /// `statuses[]` entry.
        status: Value,
        /// `contacts[]` entry (omitted for failed statuses).
        contact: Option<Value>,
    },
}

/// One delivery attempt, for tests and the read API.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// HTTP status, `None` when the connection failed.
    pub status: Option<u16>,
    /// Items in the POST.
    pub items: usize,
    /// A deliberate duplicate.
    pub duplicate: bool,
    /// Given up after this attempt.
    pub dropped: bool,
}

/// Who the notifications are about.
#[derive(Debug, Clone)]
pub struct Business {
    /// `entry[].id`.
    pub waba_id: String,
    /// `metadata.phone_number_id`.
    pub phone_number_id: String,
    /// `metadata.display_phone_number`.
    pub display_phone_number: String,
}

/// The shared delivery side: queue, pending count, records.
#[derive(Debug)]
pub struct Deliveries {
    tx: mpsc::UnboundedSender<Item>,
    pending: AtomicUsize,
    idle: Notify,
    records: Mutex<Vec<DeliveryRecord>>,
    held: watch::Sender<bool>,
}

impl Deliveries {
    /// Items queued from now on wait until [`unhold`](Self::unhold), then go out together.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Sends what was held and stops holding.
    pub fn unhold(&self) {
        self.held.send_replace(false);
    }

    /// Queues an item; it counts as pending until delivered or dropped.
    pub fn push(&self, item: Item) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(item).is_err() {
            self.done(1);
        }
    }

    /// Counts future items (statuses not yet due) as pending, so `idle` waits for them.
    pub fn reserve(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::SeqCst);
    }

    /// Releases a reservation made with `reserve`.
    pub fn release(&self, n: usize) {
        self.done(n);
    }

    /// Queues an item already counted by `reserve`.
    pub fn push_reserved(&self, item: Item) {
        if self.tx.send(item).is_err() {
            self.done(1);
        }
    }

    fn done(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    /// Waits until nothing is pending.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Every attempt so far.
    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, record: DeliveryRecord) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }
}

/// Starts the delivery loop; items are dropped (and counted done) when there is no callback URL.
pub fn start(
    callback_url: Option<String>,
    app_secret: &str,
    business: Business,
    switches: DeliverySwitches,
) -> (Arc<Deliveries>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let deliveries = Arc::new(Deliveries {
        tx,
        pending: AtomicUsize::new(0),
        idle: Notify::new(),
        records: Mutex::new(Vec::new()),
        held: watch::Sender::new(false),
    });
    let poster = Poster {
        client: reqwest::Client::new(),
        keys: AppSecretKeys::new(&[Secret::new(app_secret)]),
        callback_url,
        deliveries: Arc::clone(&deliveries),
        switches: switches.clone(),
    };
    let held = deliveries.held.subscribe();
    let task = tokio::spawn(run(rx, held, poster, business, switches));
    (deliveries, task)
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Item>,
    mut held: watch::Receiver<bool>,
    poster: Poster,
    business: Business,
    switches: DeliverySwitches,
) {
    let poster = Arc::new(poster);
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        let gather = if *held.borrow_and_update() {
            // Everything queued until the release goes out together; the sender outlives this task.
            let _ = held.wait_for(|held| !*held).await;
            true
        } else if switches.batch_size > 1 || switches.out_of_order {
            tokio::time::sleep(switches.gather_window).await;
            true
        } else {
            false
        };
        if gather {
            while let Ok(item) = rx.try_recv() {
                items.push(item);
            }
        }
        if switches.out_of_order {
            items.reverse();
        }
        for chunk in items.chunks(switches.batch_size.max(1)) {
            let body = notification(&business, chunk);
            Arc::clone(&poster).deliver(body, chunk.len()).await;
        }
    }
}

/// The notification for `items`: one entry, one change for messages, one for statuses.
pub fn notification(business: &Business, items: &[Item]) -> Vec<u8> {
    let metadata = json!({
        "display_phone_number": business.display_phone_number,
        "phone_number_id": business.phone_number_id,
    });
    let mut contacts: Vec<Value> = Vec::new();
    let mut messages = Vec::new();
    let mut status_contacts: Vec<Value> = Vec::new();
    let mut statuses = Vec::new();
    for item in items {
        match item {
            Item::Message { message, contact } => {
                if !contacts.contains(contact) {
                    contacts.push(contact.clone());
                }
                messages.push(message.clone());
            }
            Item::Status { status, contact } => {
                if let Some(contact) = contact
                    && !status_contacts.contains(contact)
                {
                    status_contacts.push(contact.clone());
                }
                statuses.push(status.clone());
            }
        }
    }
    let mut changes = Vec::new();
    if !messages.is_empty() {
        changes.push(json!({"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": metadata, "contacts": contacts, "messages": messages,
        }}));
    }
    if !statuses.is_empty() {
        let mut value =
            json!({"messaging_product": "whatsapp", "metadata": metadata, "statuses": statuses});
        if !status_contacts.is_empty() {
            value["contacts"] = json!(status_contacts);
        }
        changes.push(json!({"field": "messages", "value": value}));
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": business.waba_id, "changes": changes}],
    });
    meta_escape(&body.to_string()).into_bytes()
}

/// Meta's JSON escaping: non-ASCII as lowercase `\uXXXX`, `/` as `\/` (signatures are over these bytes).
pub fn meta_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    for c in json.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0_u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[derive(Debug)]
struct Poster {
    client: reqwest::Client,
    keys: AppSecretKeys,
    callback_url: Option<String>,
    deliveries: Arc<Deliveries>,
    switches: DeliverySwitches,
}

impl Poster {
    async fn post(&self, body: &[u8]) -> Option<u16> {
        let url = self.callback_url.as_deref()?;
        let signature = self.keys.sign(body).unwrap_or_default();
        self.client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    async fn deliver(self: Arc<Self>, body: Vec<u8>, items: usize) {
        if self.callback_url.is_none() {
            self.deliveries.done(items);
            return;
        }
        let status = self.post(&body).await;
        self.deliveries.record(DeliveryRecord {
            attempt: 1,
            status,
            items,
            duplicate: false,
            dropped: false,
        });
        if status == Some(200) {
            if self.switches.duplicates {
                let again = self.post(&body).await;
                self.deliveries.record(DeliveryRecord {
                    attempt: 1,
                    status: again,
                    items,
                    duplicate: true,
                    dropped: false,
                });
            }
            self.deliveries.done(items);
            return;
        }
        // Meta redelivers later while newer notifications keep flowing.
        tokio::spawn(async move {
            let mut delay = self.switches.retry_delay;
            for attempt in 2..=self.switches.max_attempts.max(1) {
                tokio::time::sleep(delay).await;
                delay *= 2;
                let status = self.post(&body).await;
                let last = attempt == self.switches.max_attempts;
                self.deliveries.record(DeliveryRecord {
                    attempt,
                    status,
                    items,
                    duplicate: false,
                    dropped: status != Some(200) && last,
                });
                if status == Some(200) {
                    break;
                }
            }
            self.deliveries.done(items);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_metas_signature_example() {
        let raw = r#"{"b":"café at 10? see https://example.com/m"}"#;
        assert_eq!(
            meta_escape(raw),
            r#"{"b":"caf\u00e9 at 10? see https:\/\/example.com\/m"}"#
        );
        assert_eq!(meta_escape("👍"), r"\ud83d\udc4d");
        let parsed: Value = serde_json::from_str(&meta_escape(r#"{"e":"👍/é"}"#)).expect("json");
        assert_eq!(parsed["e"], "👍/é");
    }

    #[test]
    fn a_batch_keeps_messages_and_statuses_in_separate_changes() {
        let business = Business {
            waba_id: "W".into(),
            phone_number_id: "P".into(),
            display_phone_number: "15551230000".into(),
        };
        let contact = json!({"profile": {"name": "A"}, "wa_id": "1"});
        let items = [
            Item::Message {
                message: json!({"id": "wamid.1"}),
                contact: contact.clone(),
            },
            Item::Message {
                message: json!({"id": "wamid.2"}),
                contact: contact.clone(),
            },
            Item::Status {
                status: json!({"id": "wamid.3", "status": "sent"}),
                contact: Some(contact),
            },
        ];
        let body: Value = serde_json::from_slice(&notification(&business, &items)).expect("json");
        let changes = body["entry"][0]["changes"].as_array().expect("changes");
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0]["value"]["messages"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            changes[0]["value"]["contacts"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(changes[1]["value"]["statuses"][0]["id"], "wamid.3");
    }
}
