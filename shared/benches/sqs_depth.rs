//! The edges' enqueueing against a local SQS: the latency of one `SendMessageBatch` of ten as the
//! FIFO queue fills, then a 3,000-item notification through the whole WhatsApp edge (verify,
//! split, enqueue with the default limits, inside a 6 s invocation deadline like Lambda's).
//!
//! Run: `cargo bench -p shared --bench sqs_depth`. It starts moto from the workspace's `.venv`
//! on loopback, tuned as the local stack runs it (`local/stack/moto/server.py`; `MOTO_UNTUNED=1` runs
//! plain `moto_server`); `SQS_ENDPOINT=http://127.0.0.1:PORT` measures another local SQS instead,
//! and `DEPTH_MAX` (default 3,000; 1,000 for untuned moto) bounds the fill.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use shared::adapters::sqs::SqsInboundQueue;
use shared::flows::accept_webhook::{SignedPost, WebhookEdge};
use shared::lambda::deadline;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use shared::whatsapp::signature::AppSecretKeys;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto from the workspace's `.venv`, stopped when the bench ends.
#[allow(clippy::zombie_processes)] // main kills and waits for it; a panic ends the bench anyway
fn start_moto() -> (String, std::process::Child) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = free_port();
    let mut command = if std::env::var_os("MOTO_UNTUNED").is_some() {
        std::process::Command::new(root.join(".venv/bin/moto_server"))
    } else {
        let mut tuned = std::process::Command::new(root.join(".venv/bin/python"));
        tuned.arg(root.join("local/stack/moto/server.py"));
        tuned
    };
    let child = command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server in .venv (./local/test.sh installs it)");
    for _ in 0..150 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (format!("http://127.0.0.1:{port}"), child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not start");
}

async fn fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A notification of `n` text messages from 50 users, in entries of 100 messages.
fn notification(n: usize, tag: &str) -> String {
    let entries: Vec<String> = (0..n)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|chunk| {
            let messages: Vec<String> = chunk
                .iter()
                .map(|i| format!(r#"{{"from":"4477009{:05}","id":"wamid.{tag}{i:06}","timestamp":"1767225600","type":"text","text":{{"body":"message {i} of a load test, about as long as a real one"}}}}"#, i % 50))
                .collect();
            format!(r#"{{"id":"W","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15551230000","phone_number_id":"109876543210987"}},"messages":[{}]}}}}]}}"#, messages.join(","))
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{}]}}"#,
        entries.join(",")
    )
}

#[tokio::main]
async fn main() {
    let (endpoint, moto) = match std::env::var("SQS_ENDPOINT") {
        Ok(endpoint) => (endpoint, None),
        Err(_) => {
            let (endpoint, child) = start_moto();
            (endpoint, Some(child))
        }
    };
    let server = if moto.is_some() && std::env::var_os("MOTO_UNTUNED").is_some() {
        "moto (untuned)"
    } else if moto.is_some() {
        "moto (tuned: local/stack/moto/server.py)"
    } else {
        "SQS_ENDPOINT"
    };
    let depth_max: usize = std::env::var("DEPTH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::var_os("MOTO_UNTUNED").is_some() {
            1_000
        } else {
            3_000
        });
    let config = shared::aws::local(&endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let run = std::process::id();

    println!("## SendMessageBatch of 10 (≈ 600-byte bodies) against {server}, by queue depth");
    println!("| depth before the call | calls | median ms | max ms |");
    println!("|---:|---:|---:|---:|");
    let url = fifo_queue(&sqs, &format!("depth{run}")).await;
    let mut bucket: Vec<Duration> = Vec::new();
    let mut bucket_start = 0;
    let buckets = [0, 100, 500, 1_000, 2_000, 2_900, usize::MAX];
    let mut next_bucket = 1;
    let mut sent = 0;
    while sent < depth_max {
        let entries: Vec<SendMessageBatchRequestEntry> = (0..10)
            .map(|i| {
                let n = sent + i;
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(format!("{{\"v\":1,\"item\":\"{}\"}}", "x".repeat(580)))
                    .message_group_id(format!("u_{:024}", n % 50))
                    .message_deduplication_id(format!("d{n}"))
                    .build()
                    .unwrap()
            })
            .collect();
        let started = Instant::now();
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        bucket.push(started.elapsed());
        sent += 10;
        if sent >= buckets[next_bucket] || sent >= depth_max {
            let max = bucket.iter().max().copied().unwrap_or_default();
            println!(
                "| {bucket_start}–{} | {} | {:.1} | {:.1} |",
                sent - 10,
                bucket.len(),
                median(std::mem::take(&mut bucket)).as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
            bucket_start = sent;
            next_bucket += 1;
        }
    }
    assert_eq!(depth(&sqs, &url).await, sent, "every message queued once");

    println!();
    println!("## 3,000-item notification through the WhatsApp edge ({server}, fresh queue)");
    let keys = AppSecretKeys::new(&[Secret::new("bench-app-secret")]);
    for (label, in_flight) in [("16 in flight (default)", 16), ("1 in flight", 1)] {
        let url = fifo_queue(&sqs, &format!("edge{run}x{in_flight}")).await;
        let edge = WebhookEdge {
            app_secrets: AppSecretKeys::new(&[Secret::new("bench-app-secret")]),
            verify_token: Secret::new("unused"),
            pseudonyms: Pseudonymizer::new(&Secret::new("bench-pseudonym-key-0123456789abcdef")),
            queue: SqsInboundQueue::new(sqs.clone(), &url).with_limits(
                shared::adapters::sqs::SendLimits {
                    in_flight,
                    ..Default::default()
                },
            ),
        };
        let body = notification(3_000, &format!("B{in_flight}"));
        let signature = keys.sign(body.as_bytes()).unwrap();
        let post = SignedPost {
            signature: Some(signature.as_bytes()),
            legacy_signature: false,
            body: body.as_bytes(),
            received_at_ms: 0,
        };
        let started = Instant::now();
        let lambda_deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        let outcome = deadline::scope(lambda_deadline, edge.accept(post)).await;
        let took = started.elapsed();
        let answer = match &outcome {
            Ok(_) => "200".to_owned(),
            Err(e) => format!("503 ({})", shared::error::chain(e)),
        };
        println!(
            "- {label}: {} bytes, answered {answer} after {:.0} ms; {} of 3000 items on the queue",
            body.len(),
            took.as_secs_f64() * 1e3,
            depth(&sqs, &url).await
        );
    }
    if let Some(mut moto) = moto {
        let _ = moto.kill();
        let _ = moto.wait();
    }
}
