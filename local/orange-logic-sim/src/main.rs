//! `orange-logic-sim`: serves the simulator until interrupted.
//!
//! ```text
//! orange-logic-sim [--port 8090] [--seed seed.json] [--generate 100000]
//!                  [--webhook-url URL --webhook-secret SECRET [--webhook-header NAME]]
//! ```

use anyhow::{Context, bail};
use orange_logic_sim::{DEFAULT_WEBHOOK_HEADER, SimConfig, Simulator, WebhookTarget};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let mut port = 8090_u16;
    let mut seed = None;
    let mut generate = 0_usize;
    let mut webhook_url = None;
    let mut webhook_secret = None;
    let mut webhook_header = DEFAULT_WEBHOOK_HEADER.to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => port = value()?.parse()?,
            "--seed" => seed = Some(value()?),
            "--generate" => generate = value()?.parse()?,
            "--webhook-url" => webhook_url = Some(value()?),
            "--webhook-secret" => webhook_secret = Some(value()?),
            "--webhook-header" => webhook_header = value()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let sim = Simulator::start(
        SimConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], port)),
    )
    .await?;
    if let Some(path) = seed {
        let n = sim.seed_file(std::path::Path::new(&path))?;
        tracing::info!(assets = n, path = %path, "seeded");
    }
    if generate > 0 {
        let started = std::time::Instant::now();
        sim.generate(generate, 42);
        tracing::info!(
            assets = generate,
            ms = started.elapsed().as_millis() as u64,
            "generated"
        );
    }
    if let Some(url) = webhook_url {
        sim.subscribe(WebhookTarget {
            url,
            header: webhook_header,
            secret: webhook_secret.context("--webhook-url needs --webhook-secret")?,
        });
    }
    tracing::info!(url = %sim.url(), client_id = "connector-local", "Orange Logic simulator listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
