//! Runs the local stack until Ctrl-C: moto on 127.0.0.1:4566 (reused if already running), every
//! resource of template.yaml, the HTTP front on 127.0.0.1:3000 and the queue runner.
#![allow(clippy::print_stdout)]

use local::moto::Moto;
use local::stack::{LocalStack, Options};
use std::net::SocketAddr;

const MOTO_PORT: u16 = 4566;
const FRONT_PORT: u16 = 3000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let endpoint = format!("http://127.0.0.1:{MOTO_PORT}");
    let moto = match Moto::existing(&endpoint).await {
        Some(moto) => moto,
        None => Moto::start(MOTO_PORT).await?,
    };
    let mut options = Options::new("local");
    options.front_addr = SocketAddr::from(([127, 0, 0, 1], FRONT_PORT));
    options.run_queues = true;
    let stack = LocalStack::start(&moto.endpoint, options).await?;
    println!("local stack `local` is up");
    println!("  moto (DynamoDB, S3, SQS)   {}", moto.endpoint);
    println!(
        "  WhatsApp webhook           {}",
        stack.url("/whatsapp/webhook")
    );
    println!("  app secret / verify token  see local/secrets.json");
    for (queue, url) in &stack.resources.queue_urls {
        println!("  queue {queue:<20} {url}");
    }
    for (table, name) in &stack.resources.tables {
        println!("  table {table:<20} {name}");
    }
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
