//! Benchmark: stream a 100 MB document from the simulator through the WhatsApp client and report
//! the process's peak RSS (`VmHWM`); then show that a wrong sha256 is rejected.
//!
//! `cargo build --workspace --all-targets && ./target/debug/examples/stream_download [bytes]`
//! Exits non-zero when peak RSS reaches 32 MiB or the wrong checksum is accepted.

use anyhow::{Context, bail};
use shared::secrets::Secret;
use shared::whatsapp::client::WhatsAppClient;
use shared::whatsapp::media::{ExpectedMedia, MediaCaps, MediaError, MediaSink};
use shared::whatsapp::messages::MediaKind;
use std::io::Write as _;
use std::time::Instant;
use whatsapp_sim::{SimConfig, Simulator};

/// Counts bytes and drops them: what is measured is the client's own footprint.
#[derive(Debug, Default)]
struct CountingSink {
    bytes: u64,
    largest_chunk: usize,
}

impl MediaSink for CountingSink {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.largest_chunk = self.largest_chunk.max(chunk.len());
        Ok(())
    }
}

/// `VmHWM` (peak resident set size) and `VmRSS` of this process, in KiB.
fn memory_kib() -> anyhow::Result<(u64, u64)> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} missing"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

const LIMIT_KIB: u64 = 32 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("size in bytes")?,
        None => 100_000_000,
    };
    let mut out = std::io::stdout().lock();
    let sim = Simulator::start(SimConfig::new("bench-token", "bench-secret")).await?;
    let client = WhatsAppClient::new(sim.client_config(), Secret::new("bench-token"))?;
    let (media_id, sha256) = sim.add_synthetic_media("application/pdf", size);
    let (hwm_before, rss_before) = memory_kib()?;

    let expected = ExpectedMedia {
        media_id: media_id.clone(),
        kind: MediaKind::Document,
        sha256_base64: Some(sha256),
    };
    let mut sink = CountingSink::default();
    let started = Instant::now();
    let downloaded = client
        .download_media(&expected, &MediaCaps::default(), &mut sink)
        .await?;
    let elapsed = started.elapsed();
    let (hwm_after, rss_after) = memory_kib()?;
    writeln!(
        out,
        "streamed {} bytes ({} MB) in {:.2} s = {:.1} MB/s; largest chunk {} bytes; sha256 {}",
        downloaded.bytes,
        downloaded.bytes / 1_000_000,
        elapsed.as_secs_f64(),
        downloaded.bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        sink.largest_chunk,
        downloaded.sha256_hex
    )?;
    writeln!(
        out,
        "RSS before {rss_before} KiB, after {rss_after} KiB; peak RSS (VmHWM) before {hwm_before} KiB, after {hwm_after} KiB (limit {LIMIT_KIB} KiB)"
    )?;

    let wrong = ExpectedMedia {
        sha256_base64: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        ..expected
    };
    let rejected = client
        .download_media(&wrong, &MediaCaps::default(), &mut CountingSink::default())
        .await;
    writeln!(
        out,
        "wrong sha256: {}",
        match &rejected {
            Err(MediaError::ChecksumMismatch) => "rejected (ChecksumMismatch)".to_owned(),
            other => format!("NOT rejected: {other:?}"),
        }
    )?;
    let (hwm_end, _) = memory_kib()?;
    writeln!(out, "peak RSS at exit {hwm_end} KiB")?;

    if downloaded.bytes != size {
        bail!("streamed {} of {size} bytes", downloaded.bytes);
    }
    if hwm_end >= LIMIT_KIB {
        bail!("peak RSS {hwm_end} KiB is not under {LIMIT_KIB} KiB");
    }
    if !matches!(rejected, Err(MediaError::ChecksumMismatch)) {
        bail!("a wrong sha256 was not rejected");
    }
    Ok(())
}
