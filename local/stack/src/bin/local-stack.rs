//! Runs the local stack until Ctrl-C: moto on 127.0.0.1:4566 (reused if already running), every
//! resource of template.yaml, the HTTP front on 127.0.0.1:3000 and the queue runner.
#![allow(clippy::print_stdout)]

use local::moto::Moto;
use local::stack::{LocalStack, Options};
use std::net::SocketAddr;

const MOTO_PORT: u16 = 4566;
const FRONT_PORT: u16 = 3000;
const WHATSAPP_SIM_PORT: u16 = 4010;
const ORANGE_LOGIC_SIM_PORT: u16 = 4020;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let endpoint = format!("http://127.0.0.1:{MOTO_PORT}");
    let moto = match Moto::existing(&endpoint).await {
        Some(moto) => moto,
        None => Moto::start(MOTO_PORT).await?,
    };
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], ORANGE_LOGIC_SIM_PORT)),
    )
    .await?;
    let seeded =
        dam.seed_file(&local::moto::workspace_root().join("local/orange-logic-seed.json"))?;
    let mut options = Options::new("local");
    options.front_addr = SocketAddr::from(([127, 0, 0, 1], FRONT_PORT));
    options.run_queues = true;
    options.orange_logic_url = Some(dam.url());
    options.graph_base_url = Some(format!("http://127.0.0.1:{WHATSAPP_SIM_PORT}"));
    let stack = LocalStack::start(&moto.endpoint, options).await?;
    // For `sam local invoke` (local/sam-env.json): the secrets and configuration in moto too.
    local::sam_local::seed(&stack.aws, "local").await?;
    dam.subscribe(orange_logic_sim::WebhookTarget {
        url: stack.url("/dam/webhook"),
        header: "x-dam-webhook-secret".into(),
        secret: "local-dam-webhook-secret".into(),
    });
    let mut wa = whatsapp_sim::SimConfig::new("local-graph-token", "local-app-secret-change-me");
    wa.addr = SocketAddr::from(([127, 0, 0, 1], WHATSAPP_SIM_PORT));
    wa.callback_url = Some(stack.url("/whatsapp/webhook"));
    let whatsapp = whatsapp_sim::Simulator::start(wa).await?;
    println!("local stack `local` is up");
    println!("  moto (DynamoDB, S3, SQS)   {}", moto.endpoint);
    println!(
        "  WhatsApp webhook           {}",
        stack.url("/whatsapp/webhook")
    );
    println!("  DAM webhook                {}", stack.url("/dam/webhook"));
    println!(
        "  WhatsApp Graph simulator   {} (token local-graph-token; conversations at /sim)",
        whatsapp.base_url()
    );
    println!(
        "  Orange Logic simulator     {} ({seeded} assets from local/orange-logic-seed.json)",
        dam.url()
    );
    println!(
        "  operator page              {}#access_token={} (a local token, valid for an hour)",
        stack.url("/operator"),
        stack.operator_token("+447700900401")
    );
    println!("  app secret / verify token  see local/secrets.json");
    println!(
        "  for sam local invoke       secret {}, parameter {} (local/sam-env.json)",
        local::sam_local::secret_name("local"),
        local::sam_local::config_parameter("local")
    );
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
