//! The simulator's rules on its manual clock: time passes only when the test says so.

use std::time::Duration;
use whatsapp_sim::{Clock, SimConfig, Simulator};

const TOKEN: &str = "sim-access-token";

#[tokio::test]
async fn a_download_url_dies_when_five_minutes_pass_on_the_simulators_clock() {
    let mut config = SimConfig::new(TOKEN, "sim-app-secret");
    config.clock = Clock::manual();
    let sim = Simulator::start(config).await.expect("simulator");
    let (media_id, _) = sim.add_media("image/png", b"\x89PNG fixture".to_vec());
    let http = reqwest::Client::new();
    let info: serde_json::Value = http
        .get(format!("{}/v23.0/{media_id}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let url = info["url"].as_str().expect("url").to_owned();
    let download = || async {
        http.get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16()
    };
    sim.advance_clock(Duration::from_secs(299));
    assert_eq!(download().await, 200, "still inside its 5 minutes");
    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(download().await, 404, "expired");
}
