//! Count of the AWS requests behind inbound texts (docs/cost.md): `n` texts (default 100) from ten
//! users through the local stack's webhook and route-inbound, with every request moto receives
//! recorded (moto's recorder, `MOTO_ENABLE_RECORDING`) and counted by service operation
//! (`X-Amz-Target`, or the method for S3). Printed per text, beside what route-inbound did.
//!
//! `cargo build --workspace --all-targets && MOTO_ENABLE_RECORDING=True \
//! MOTO_RECORDER_FILEPATH=/tmp/moto-recording.jsonl ./target/debug/examples/request_count [n]`
//!
//! The local runner's polls are not Lambda's: it receives until a receive comes back empty (one
//! empty `ReceiveMessage` per drain) and deletes per batch, so SQS receive and delete counts show
//! this runner's batching, not an event source mapping's.

use anyhow::Context;
use local::stack::{LocalStack, Options};
use std::collections::BTreeMap;
use std::io::Write as _;

const USERS: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("number of texts")?,
        None => 100,
    };
    // moto (a child process) inherits these and appends every request it serves to the file.
    if std::env::var("MOTO_ENABLE_RECORDING").is_err() {
        anyhow::bail!(
            "run with MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH=<file> (moto's recorder)"
        );
    }
    let recording = std::path::PathBuf::from(
        std::env::var("MOTO_RECORDER_FILEPATH").context("MOTO_RECORDER_FILEPATH")?,
    );
    let moto = local::moto::start_for_process()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut options = Options::new(format!("count{}", std::process::id()));
    options.graph_base_url = Some(format!("http://127.0.0.1:{port}"));
    let stack = LocalStack::start(&moto, options).await?;
    let mut config =
        whatsapp_sim::SimConfig::new("local-graph-token", "local-app-secret-change-me");
    config.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.callback_url = Some(stack.url("/whatsapp/webhook"));
    let phone = whatsapp_sim::Simulator::start(config).await?;

    // Warm every path once (cold-start reads of secrets and configuration), then count from zero.
    phone.user("447700900900").send_text("warm-up");
    phone.idle().await;
    let inbound = stack.consumer("InboundQueue").context("inbound consumer")?;
    stack.runner.drain(inbound, 50).await?;
    let http = reqwest::Client::new();
    http.post(format!("{moto}/moto-api/recorder/reset-recording"))
        .send()
        .await?
        .error_for_status()?;

    for i in 0..n {
        let user = format!("4477009{:05}", i % USERS);
        phone.user(&user).send_text(&format!("text {i}"));
    }
    phone.idle().await;
    let reports = stack.runner.drain(inbound, 10 * n + 10).await?;
    let batches = reports.len();

    let text =
        std::fs::read_to_string(&recording).with_context(|| format!("{}", recording.display()))?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)?;
        let headers = &entry["headers"];
        let target = headers
            .as_object()
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                    .and_then(|(_, v)| v.as_str())
            })
            .map(str::to_owned)
            .unwrap_or_else(|| format!("S3/other {}", entry["method"].as_str().unwrap_or("?")));
        *counts.entry(target).or_default() += 1;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{n} texts from {USERS} users, route-inbound batches {batches}; AWS requests:"
    )?;
    writeln!(out, "| operation | requests | per text |")?;
    writeln!(out, "|---|---:|---:|")?;
    for (operation, count) in &counts {
        writeln!(
            out,
            "| {operation} | {count} | {:.2} |",
            *count as f64 / n as f64
        )?;
    }
    Ok(())
}
