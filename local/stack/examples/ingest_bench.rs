//! Benchmark: one field document of `bytes` (default 100 MB) ingested end to end on the local stack
//! — the phone's webhook, route-inbound, ingest-field-media (WhatsApp → S3 staging → DAM), the
//! receipt — with the process's peak RSS (`VmHWM`), against the simulator's raw transfer of the
//! same bytes (one download into a counting sink).
//!
//! `cargo build -p local --examples && ./target/debug/examples/ingest_bench [bytes]`
//! (moto runs as its own process; the simulators and every function run in this one).

use anyhow::Context;
use local::moto::workspace_root;
use local::stack::{LocalStack, Options};
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::{Contact, Role, WhatsAppAddress};
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::client::WhatsAppClient;
use shared::whatsapp::media::{ExpectedMedia, MediaCaps, MediaSink};
use shared::whatsapp::messages::MediaKind;
use std::io::Write as _;
use std::time::{Duration, Instant};

const FIELD: &str = "447700900777";

#[derive(Debug, Default)]
struct CountingSink(u64);

impl MediaSink for CountingSink {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0 += chunk.len() as u64;
        Ok(())
    }
}

fn memory_kib() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} missing"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("size in bytes")?,
        None => 100_000_000,
    };
    shared::telemetry::init();
    let mut out = std::io::stdout().lock();
    let moto = local::moto::start_for_process()?;
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    dam.seed_file(&workspace_root().join("local/orange-logic-seed.json"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut options = Options::new(format!("bench{}", std::process::id()));
    options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
    options.orange_logic_url = Some(dam.url());
    options.env_overrides = [("RECEIPT_WINDOW_SECONDS", "0"), ("PAIR_INTERVAL_MS", "1")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let stack = LocalStack::start(&moto, options).await?;
    let mut config =
        whatsapp_sim::SimConfig::new("local-graph-token", "local-app-secret-change-me");
    config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.callback_url = Some(stack.url("/whatsapp/webhook"));
    let phone = whatsapp_sim::Simulator::start(config).await?;
    let mut contact = Contact::new(
        Pseudonymizer::new(&Secret::new("local-pseudonym-key-0123456789abcdef0123"))
            .pseudonym(FIELD),
    );
    contact.name = Some("Bench Field".into());
    contact.address = Some(WhatsAppAddress::parse(&format!("+{FIELD}"))?);
    contact.roles = [Role::Field].into();
    DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.resources.tables["ContactsTable"],
    )
    .put(&contact)
    .await?;

    // The raw transfer: the same bytes from the simulator into a counting sink.
    let (raw_id, raw_sha) = phone.add_synthetic_media("application/pdf", size);
    let client = WhatsAppClient::new(phone.client_config(), Secret::new("local-graph-token"))?;
    let started = Instant::now();
    client
        .download_media(
            &ExpectedMedia {
                media_id: raw_id,
                kind: MediaKind::Document,
                sha256_base64: Some(raw_sha),
            },
            &MediaCaps::default(),
            &mut CountingSink::default(),
        )
        .await?;
    let raw = started.elapsed();

    let (hwm_before, rss_before) = memory_kib()?;
    let (media_id, sha256) = phone.add_synthetic_media("application/pdf", size);
    phone.user(FIELD).send_stored_media(
        MediaKind::Document,
        &media_id,
        "application/pdf",
        &sha256,
        Some("#BRIDGE-9 survey"),
    );
    phone.idle().await;
    let drain = |queue: &'static str| {
        let consumer = stack.consumer(queue).expect("consumer");
        stack.runner.drain(consumer, 20)
    };
    drain("InboundQueue").await?;
    let started = Instant::now();
    drain("FieldIngestQueue").await?;
    let ingest = started.elapsed();
    drain("FieldReceiptsQueue").await?;
    drain("OutboundQueue").await?;
    let (hwm_after, _) = memory_kib()?;

    let filed = dam
        .assets()
        .into_iter()
        .filter(|a| a.field("Custom.WhatsAppMessageId").is_some())
        .count();
    let largest = dam.stats().largest_upload;
    let receipt = phone
        .users()
        .into_iter()
        .flat_map(|u| u.lines)
        .any(|l| l.direction == "out" && l.summary.contains("Thank you"));
    writeln!(
        out,
        "bytes {size}: ingest {:.2} s (raw download {:.2} s, {:.1}x), peak RSS {hwm_after} KiB \
         (before the message: peak {hwm_before} KiB, rss {rss_before} KiB), assets filed {filed}, \
         largest upload {largest} B, receipt {receipt}",
        ingest.as_secs_f64(),
        raw.as_secs_f64(),
        ingest.as_secs_f64() / raw.as_secs_f64().max(1e-6)
    )?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    anyhow::ensure!(
        filed == 1 && largest == size && receipt,
        "the document was not filed"
    );
    Ok(())
}
