//! The whole stack's log, as the functions write it (JSON, the template's `RUST_LOG` one level more
//! verbose), never holds a clear phone number, a caption or message text, a token or secret, or a
//! URL with its query string (signed media URLs, DAM calls). Every e2e test of this process logs
//! into the same capture; this one also plays a run of its own through both edges, the Graph
//! client's media download and the DAM client's writes, with failures on the way.

use e2e::{APP_SECRET, TestEnv, logs};
use orange_logic_sim::Simulator as DamSimulator;
use shared::adapters::orange_logic::{Auth, FieldUpdate, OrangeLogicClient, Settings, TOKEN_PATH};
use shared::secrets::Secret;
use shared::whatsapp::client::WhatsAppClient;
use shared::whatsapp::media::{ExpectedMedia, MediaCaps};
use shared::whatsapp::messages::MediaKind;
use std::net::SocketAddr;
use whatsapp_sim::{SimConfig, Simulator};

const USER: &str = "447700900177";
const CAPTION: &str = "Storefront at dawn, ask Priya";
const TEXT: &str = "My badge code is 88-41-ZETA";
const GRAPH_TOKEN: &str = "local-graph-token";
const DAM_SECRET: &str = "local-orange-logic-secret";
const PSEUDONYM_KEY: &str = "local-pseudonym-key-0123456789abcdef0123";
const DAM_WEBHOOK_SECRET: &str = "local-dam-webhook-secret";

/// `http(s)://…?…` anywhere in `log`.
fn urls_with_query(log: &str) -> Vec<&str> {
    log.match_indices("http")
        .filter_map(|(at, _)| {
            let rest = &log[at..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\\')
                .unwrap_or(rest.len());
            let url = &rest[..end];
            (url.starts_with("http://") || url.starts_with("https://"))
                .then_some(url)
                .filter(|u| u.contains('?'))
        })
        .collect()
}

#[tokio::test]
async fn the_whole_stack_log_holds_no_clear_number_caption_token_or_signed_url() {
    let dam = DamSimulator::start(
        orange_logic_sim::SimConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("dam simulator");
    let dam_url = dam.url();
    let env = TestEnv::start_with(|o| o.orange_logic_url = Some(dam_url)).await;
    let mut config = SimConfig::new(GRAPH_TOKEN, APP_SECRET);
    config.callback_url = Some(env.stack.url("/whatsapp/webhook"));
    let whatsapp = Simulator::start(config).await.expect("whatsapp simulator");

    // A field user writes: text, a captioned photo, a location.
    let user = whatsapp.user(USER);
    user.send_text(TEXT);
    let (_, photo) = user.send_media(
        MediaKind::Image,
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        Some(CAPTION),
        None,
    );
    user.send_location(51.5, -0.14, Some("Priya's shop"));
    whatsapp.idle().await;
    assert!(
        env.queue_depth("InboundQueue").await >= 3,
        "the edge took them"
    );

    // A forged delivery carrying the number and the caption is refused (and logged as refused).
    let forged = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"{USER}","phone_number_id":"109876543210987"}},"messages":[{{"from":"{USER}","id":"wamid.F","timestamp":"1","type":"text","text":{{"body":"{CAPTION}"}}}}]}}}}]}}]}}"#
    );
    let status = env
        .meta()
        .deliver_with(forged.as_bytes(), Some("sha256=00"))
        .await
        .expect("delivered");
    assert_eq!(status, 401);

    // The media is fetched through its signed URL, once after the URL expired.
    let client = WhatsAppClient::new(whatsapp.client_config(), Secret::new(GRAPH_TOKEN))
        .expect("graph client");
    whatsapp.expire_next_download_url();
    let mut sink = Vec::new();
    client
        .download_media(
            &ExpectedMedia {
                media_id: photo,
                kind: MediaKind::Image,
                sha256_base64: None,
            },
            &MediaCaps::default(),
            &mut sink,
        )
        .await
        .expect("downloaded");

    // The DAM gets the caption and the sender's name written, through a 503 and a retry.
    let asset = dam.add_asset(&[
        ("CoreField.Title", "Site photo"),
        ("CoreField.Status", "Draft"),
    ]);
    let dam_client = OrangeLogicClient::new(Settings::new(
        dam.url(),
        Auth::ClientCredentials {
            token_path: TOKEN_PATH.into(),
            client_id: "connector-local".into(),
            client_secret: Secret::new(DAM_SECRET),
        },
    ))
    .expect("dam client");
    dam.fail_next(&[503]);
    let _ = dam_client
        .update_record(&asset, &[FieldUpdate::set("CoreField.Title", CAPTION)])
        .await;
    dam_client
        .update_record(&asset, &[FieldUpdate::set("CoreField.Title", CAPTION)])
        .await
        .expect("written after the outage");
    dam_client
        .append_to_field(
            &asset,
            "Custom.WhatsAppLog",
            &format!("{TEXT} from +{USER}"),
        )
        .await
        .expect("logged on the asset");

    let log = logs::captured();
    if let Ok(path) = std::env::var("LOG_HYGIENE_DUMP") {
        std::fs::write(&path, &log).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert!(
        log.lines().count() > 3 && log.contains("\"level\""),
        "the capture holds the stack's JSON log lines"
    );
    let spaced = format!("+{} {} {}", &USER[..2], &USER[2..6], &USER[6..]);
    for (what, needle) in [
        ("the clear number", USER),
        ("the number as people write it", spaced.as_str()),
        ("a caption", CAPTION),
        ("message text", TEXT),
        ("the Graph token", GRAPH_TOKEN),
        ("the DAM client secret", DAM_SECRET),
        ("the Meta app secret", APP_SECRET),
        ("the pseudonym key", PSEUDONYM_KEY),
        ("the DAM webhook secret", DAM_WEBHOOK_SECRET),
        ("a media download path", "whatsapp_business/attachments"),
    ] {
        let at = log.find(needle);
        assert!(
            at.is_none(),
            "the log holds {what}: …{}…",
            at.map(|i| &log[i.saturating_sub(120)..(i + needle.len() + 40).min(log.len())])
                .unwrap_or_default()
        );
    }
    assert_eq!(
        urls_with_query(&log),
        Vec::<&str>::new(),
        "URLs with a query string"
    );
}
