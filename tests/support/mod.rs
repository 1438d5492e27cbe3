//! `TestEnv`: one moto per test process, and a fresh local stack (its own resource names) per test.

use aws_sdk_sqs::types::QueueAttributeName;
use local::stack::{LocalStack, Options};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The local app secret, verify token and paths the stack uses (`local/secrets.json`).
pub const APP_SECRET: &str = "local-app-secret-change-me";
/// See [`APP_SECRET`].
pub const VERIFY_TOKEN: &str = "local-verify-token";

static MOTO: OnceLock<String> = OnceLock::new();
static STACKS: AtomicUsize = AtomicUsize::new(0);

/// A started local stack for one test.
#[derive(Debug)]
pub struct TestEnv {
    /// The stack.
    pub stack: LocalStack,
}

fn moto_endpoint() -> &'static str {
    MOTO.get_or_init(|| match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) => endpoint,
        Err(_) => {
            local::moto::start_for_process().unwrap_or_else(|e| panic!("cannot start moto: {e:#}"))
        }
    })
}

impl TestEnv {
    /// Starts a stack with names no other test uses.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a stack with names no other test uses and options adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut Options)) -> Self {
        logs::capture();
        emf::capture();
        let n = STACKS.fetch_add(1, Ordering::SeqCst);
        let mut options = Options::new(format!("t{}-{n}", std::process::id()));
        configure(&mut options);
        let stack = LocalStack::start(moto_endpoint(), options)
            .await
            .unwrap_or_else(|e| panic!("local stack: {e:#}"));
        Self { stack }
    }

    /// Starts a stack on a moto of its own, for tests whose load would otherwise queue behind
    /// (or hold up) every other test's calls on the shared moto, which serves one call at a time.
    pub async fn start_alone(configure: impl FnOnce(&mut Options)) -> Self {
        logs::capture();
        emf::capture();
        let endpoint = tokio::task::spawn_blocking(local::moto::start_for_process)
            .await
            .unwrap_or_else(|e| panic!("starting moto: {e}"))
            .unwrap_or_else(|e| panic!("cannot start moto: {e:#}"));
        let n = STACKS.fetch_add(1, Ordering::SeqCst);
        let mut options = Options::new(format!("t{}-{n}", std::process::id()));
        configure(&mut options);
        let stack = LocalStack::start(&endpoint, options)
            .await
            .unwrap_or_else(|e| panic!("local stack: {e:#}"));
        Self { stack }
    }

    /// The WhatsApp webhook as Meta calls it.
    pub fn meta(&self) -> local::whatsapp_meta::MetaWebhookSender {
        local::whatsapp_meta::MetaWebhookSender::new(
            self.stack.url("/whatsapp/webhook"),
            APP_SECRET,
        )
    }

    /// Messages on a queue (visible and in flight), by logical id.
    pub async fn queue_depth(&self, queue: &str) -> usize {
        let url = self
            .stack
            .resources
            .queue_url(queue)
            .unwrap_or_else(|e| panic!("{e}"));
        let attributes = self
            .stack
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("queue attributes: {e}"))
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attributes
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Receives every visible message of a queue (bodies), hiding them for a minute.
    pub async fn receive_all(&self, queue: &str) -> Vec<String> {
        let url = self.queue_url(queue);
        let mut bodies = Vec::new();
        loop {
            let batch = self.receive(url, 60).await;
            if batch.is_empty() {
                return bodies;
            }
            bodies.extend(batch.into_iter().filter_map(|m| m.body));
        }
    }

    fn queue_url(&self, queue: &str) -> &str {
        self.stack
            .resources
            .queue_url(queue)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// One batch of up to ten visible messages, hidden for `visibility` seconds.
    async fn receive(&self, url: &str, visibility: i32) -> Vec<aws_sdk_sqs::types::Message> {
        self.stack
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive: {e}"))
            .messages
            .unwrap_or_default()
    }
}

impl TestEnv {
    /// Runs the consumer of `queue` (its logical id) until the queue is empty, at most `rounds`
    /// batches, one batch at a time.
    pub async fn drain(&self, queue: &str, rounds: usize) {
        let drained = self.stack.runner.drain(self.consumer(queue), rounds).await;
        drained.unwrap_or_else(|e| panic!("draining {queue}: {e:#}"));
    }

    /// [`TestEnv::drain`] with the message groups' batches run side by side, as Lambda would.
    pub async fn drain_concurrently(&self, queue: &str, rounds: usize) {
        let consumer = self.consumer(queue);
        let drained = self.stack.runner.drain_concurrently(consumer, rounds).await;
        drained.unwrap_or_else(|e| panic!("draining {queue}: {e:#}"));
    }

    fn consumer(&self, queue: &str) -> &local::runner::Consumer {
        self.stack
            .consumer(queue)
            .unwrap_or_else(|| panic!("{queue} has a consumer"))
    }

    /// Takes every message off `queue`, parsed as JSON, as its consumer would take them (a FIFO
    /// group stays blocked while a message of it is in flight, so each is deleted once read).
    pub async fn take_all<T: serde::de::DeserializeOwned>(&self, queue: &str) -> Vec<T> {
        let url = self.queue_url(queue);
        let sqs = self.stack.sqs();
        let mut taken = Vec::new();
        loop {
            let batch = self.receive(url, 60).await;
            if batch.is_empty() {
                return taken;
            }
            for message in batch {
                taken.push(
                    serde_json::from_str(message.body().unwrap_or_default())
                        .unwrap_or_else(|e| panic!("a message of {queue}: {e}")),
                );
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("delete: {e}"));
            }
        }
    }
}

/// What the simulated phone of `phone` (digits, no `+`) shows from the business, oldest first:
/// `(wamid, summary)` of each line.
pub fn business_lines(wa: &whatsapp_sim::Simulator, phone: &str) -> Vec<(String, String)> {
    wa.users()
        .into_iter()
        .find(|u| u.wa_id.as_deref() == Some(phone))
        .map(|u| {
            u.lines
                .into_iter()
                .filter(|l| l.direction == "out")
                .map(|l| (l.id, l.summary))
                .collect()
        })
        .unwrap_or_default()
}

/// A file of `events/`, relative to the workspace root.
pub fn event_file(path: &str) -> String {
    let full = local::moto::workspace_root().join("events").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The body and signature header of an API Gateway event file.
pub fn signed_body(path: &str) -> (String, String) {
    let event: serde_json::Value =
        serde_json::from_str(&event_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = event["body"].as_str().unwrap_or_default().to_owned();
    let signature = event["headers"]["x-hub-signature-256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (body, signature)
}

/// Every log line the stacks of this test process write, kept for the log hygiene check.
pub mod logs {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();

    struct Sink;

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            LINES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The `RUST_LOG` the template gives every function, at `debug` for the connector's crates
    /// (one level more than the default, so the check is stricter than production).
    pub fn template_filter() -> String {
        let template = std::fs::read_to_string(local::moto::workspace_root().join("template.yaml"))
            .unwrap_or_else(|e| panic!("template.yaml: {e}"));
        let line = template
            .lines()
            .find_map(|l| l.trim().strip_prefix("RUST_LOG: !Sub "))
            .unwrap_or_else(|| panic!("template.yaml sets no RUST_LOG in Globals"));
        line.trim_matches('"').replace("${LogLevel}", "debug")
    }

    /// Installs, once per process, the functions' JSON log format with the template's filter,
    /// writing into memory.
    pub fn capture() {
        INSTALLED.get_or_init(|| {
            let filter = tracing_subscriber::EnvFilter::new(template_filter());
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_current_span(true)
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .with_writer(|| Sink)
                .try_init();
        });
    }

    /// Everything logged so far, by every test of this process.
    pub fn captured() -> String {
        String::from_utf8_lossy(
            &LINES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

/// Every EMF line (`shared::metrics`) the stacks of this test process write, parsed.
pub mod emf {
    use std::sync::{Mutex, OnceLock};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();

    /// Sends the metrics of every in-process function here instead of stdout (once per process).
    pub fn capture() {
        INSTALLED.get_or_init(|| {
            shared::metrics::set_sink(Box::new(|line| {
                LINES
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line.to_owned());
            }));
        });
    }

    /// Every line so far, parsed (a line that is not JSON panics: EMF lines must parse).
    pub fn lines() -> Vec<serde_json::Value> {
        LINES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not an EMF line: {e}: {l}"))
            })
            .collect()
    }

    /// The namespace the functions of stack `stack` write to (template.yaml's `METRICS_NAMESPACE`).
    pub fn namespace(stack: &str) -> String {
        format!("OrangeLogicWhatsApp/{stack}")
    }

    /// The sum of `metric` over the lines of `stack`'s `function` and `flow`.
    pub fn total(stack: &str, function: &str, flow: &str, metric: &str) -> u64 {
        let namespace = namespace(stack);
        lines()
            .iter()
            .filter(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace.as_str())
            .filter(|l| l["Function"] == function && l["Flow"] == flow)
            .filter_map(|l| l[metric].as_u64())
            .sum()
    }
}
