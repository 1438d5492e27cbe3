//! `whatsapp-sim`: the simulator as a process, for the demo and manual testing.
//!
//! Settings: `SIM_ADDR` (default `127.0.0.1:4010`), `SIM_ACCESS_TOKEN` (default `local-access-token`),
//! `SIM_APP_SECRET` (default the local stack's), `SIM_CALLBACK_URL` (optional).

use anyhow::Context;
use whatsapp_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let var =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let mut config = SimConfig::new(
        var("SIM_ACCESS_TOKEN", "local-access-token"),
        var("SIM_APP_SECRET", "local-app-secret-change-me"),
    );
    config.addr = var("SIM_ADDR", "127.0.0.1:4010")
        .parse()
        .context("SIM_ADDR")?;
    config.callback_url = std::env::var("SIM_CALLBACK_URL").ok();
    let sim = Simulator::start(config).await?;
    tracing::info!(url = sim.base_url(), page = %format!("{}/sim", sim.base_url()), "WhatsApp simulator listening");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    Ok(())
}
