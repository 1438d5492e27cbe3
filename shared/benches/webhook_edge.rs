//! The webhook edge's CPU cost per notification, against the floor of HMAC verification plus a plain
//! `serde_json::Value` parse of the same bytes. No network: the edge's work ends at the built
//! `SendMessageBatch` entries. Run: `cargo bench --workspace --bench webhook_edge`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use shared::adapters::sqs::batch_entries;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::envelope::split;
use shared::whatsapp::signature::{AppSecretKeys, verify};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's webhook fixtures (`fixtures/whatsapp/webhooks/`).
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/whatsapp/webhooks")
}

/// Meta sends compact JSON; the fixture files are pretty-printed.
fn payloads() -> Vec<(String, Vec<u8>)> {
    let mut payloads: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .expect("the repository's webhook fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("inbound-") || name.starts_with("status-")
        })
        .map(|p| {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::to_vec(&value).unwrap(),
            )
        })
        .collect();
    payloads.sort();
    // One busy POST: every example's entries in one notification, as Meta batches under load.
    let entries: Vec<serde_json::Value> = payloads
        .iter()
        .flat_map(|(_, body)| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            v["entry"].as_array().cloned().unwrap_or_default()
        })
        .collect();
    let batched = serde_json::json!({"object": "whatsapp_business_account", "entry": entries});
    payloads.push((
        "all examples in one POST".into(),
        serde_json::to_vec(&batched).unwrap(),
    ));
    payloads
}

/// CPU time this thread has run, from the scheduler's own accounting: unlike wall-clock time, it
/// does not grow while the thread waits for a core on a busy machine.
fn thread_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|ns| ns.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_else(|| START.with(Instant::elapsed))
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Median CPU time per call of `a` and of `b`, measured in alternating rounds of about 100 ms each
/// (far above the scheduler's accounting granularity) so both see the same machine state.
fn measure_pair(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let started = Instant::now();
    let mut calibration = 0_u32;
    while started.elapsed() < Duration::from_millis(50) {
        a();
        calibration += 1;
    }
    let iterations = calibration.max(1) * 2;
    let round = |f: &mut dyn FnMut()| {
        let start = thread_cpu_time();
        for _ in 0..iterations {
            f();
        }
        (thread_cpu_time() - start) / iterations
    };
    round(&mut b);
    let (mut xs, mut ys): (Vec<Duration>, Vec<Duration>) =
        (0..rounds).map(|_| (round(&mut a), round(&mut b))).unzip();
    xs.sort();
    ys.sort();
    (xs[rounds / 2], ys[rounds / 2])
}

fn main() {
    let keys = AppSecretKeys::new(&[Secret::new("bench-app-secret")]);
    let pseudonyms = Pseudonymizer::new(&Secret::new("bench-pseudonym-key-0123456789abcdef"));
    let mut rows = Vec::new();
    let (mut edge_total, mut floor_total) = (Duration::ZERO, Duration::ZERO);
    for (name, body) in payloads() {
        let header = keys.sign(&body).unwrap();
        let (edge, floor) = measure_pair(
            11,
            || {
                verify(&keys, Some(header.as_bytes()), false, black_box(&body)).unwrap();
                let items = split(black_box(&body), &pseudonyms, 0).unwrap().items;
                black_box(batch_entries(&items).unwrap());
            },
            || {
                verify(&keys, Some(header.as_bytes()), false, black_box(&body)).unwrap();
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap());
            },
        );
        let items = split(&body, &pseudonyms, 0).unwrap().items.len();
        edge_total += edge;
        floor_total += floor;
        rows.push(format!(
            "| {name} | {} | {items} | {:.2} | {:.2} | {:.2}× |",
            body.len(),
            edge.as_nanos() as f64 / 1000.0,
            floor.as_nanos() as f64 / 1000.0,
            edge.as_secs_f64() / floor.as_secs_f64()
        ));
    }
    let bootstrap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lambda/whatsapp-webhook/bootstrap");
    match std::fs::metadata(&bootstrap) {
        Ok(meta) => println!(
            "whatsapp-webhook bootstrap (cargo lambda build --release --arm64): {} bytes\n",
            meta.len()
        ),
        Err(_) => println!(
            "whatsapp-webhook bootstrap: not built (cargo lambda build --release --arm64 -p whatsapp-webhook)\n"
        ),
    }
    println!(
        "| payload | bytes | items | edge µs | floor µs (HMAC + Value parse) | edge / floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "| **all payloads, summed** | | | {:.2} | {:.2} | **{:.2}×** |",
        edge_total.as_nanos() as f64 / 1000.0,
        floor_total.as_nanos() as f64 / 1000.0,
        edge_total.as_secs_f64() / floor_total.as_secs_f64()
    );
}
