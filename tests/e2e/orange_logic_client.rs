//! The Orange Logic client against the simulator: authentication and renewal, paging to the last
//! page, DataTable operators, streamed uploads, links, and every error class.

use futures::TryStreamExt as _;
use orange_logic_sim::{SimConfig, Simulator, TokenStyle};
use shared::adapters::orange_logic::{
    Auth, FieldOp, FieldUpdate, NewMedia, OrangeLogicClient, OrangeLogicError, SearchQuery,
    Settings, TOKEN_PATH, open_file,
};
use shared::error::Retryable;
use shared::secrets::Secret;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "connector-local";
const CLIENT_SECRET: &str = "local-orange-logic-secret";

async fn sim(config: SimConfig) -> Simulator {
    Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator")
}

fn credentials(secret: &str) -> Auth {
    Auth::ClientCredentials {
        token_path: TOKEN_PATH.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(secret),
    }
}

fn client(sim: &Simulator) -> OrangeLogicClient {
    OrangeLogicClient::new(Settings::new(sim.url(), credentials(CLIENT_SECRET))).expect("client")
}

fn client_with(sim: &Simulator, tune: impl FnOnce(&mut Settings)) -> OrangeLogicClient {
    let mut settings = Settings::new(sim.url(), credentials(CLIENT_SECRET));
    tune(&mut settings);
    OrangeLogicClient::new(settings).expect("client")
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_succeeds() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    assert!(
        client
            .read_record("RecordID", &id)
            .await
            .expect("read")
            .is_some()
    );
    sim.expire_tokens();
    let record = client
        .read_record("RecordID", &id)
        .await
        .expect("read after expiry");
    assert_eq!(record.expect("record")["CoreField.Title"], "Bridge");
    let stats = sim.stats();
    assert_eq!(stats.tokens_issued, 2, "one token, then one renewal");
    assert_eq!(stats.statuses.get(&401), Some(&1));
}

#[tokio::test]
async fn a_camel_case_token_answer_is_accepted() {
    let sim = sim(SimConfig {
        token_style: TokenStyle::CamelCase,
        ..SimConfig::default()
    })
    .await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    assert!(
        client(&sim)
            .read_record("RecordID", &id)
            .await
            .expect("read")
            .is_some()
    );
}

#[tokio::test]
async fn refused_client_credentials_are_a_permanent_error() {
    let sim = sim(SimConfig::default()).await;
    let client =
        OrangeLogicClient::new(Settings::new(sim.url(), credentials("wrong"))).expect("client");
    let err = client
        .read_record("RecordID", "X")
        .await
        .expect_err("refused");
    assert!(
        matches!(err, OrangeLogicError::AuthRejected { status: 401 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_static_bearer_token_works_and_a_revoked_one_is_unauthorized() {
    let sim = sim(SimConfig {
        static_tokens: vec!["static-token-1".into()],
        ..SimConfig::default()
    })
    .await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let bearer = |token: &str| {
        OrangeLogicClient::new(Settings::new(
            sim.url(),
            Auth::StaticBearer(Secret::new(token)),
        ))
        .expect("client")
    };
    assert!(
        bearer("static-token-1")
            .read_record("RecordID", &id)
            .await
            .is_ok()
    );
    let err = bearer("revoked")
        .read_record("RecordID", &id)
        .await
        .expect_err("401");
    assert!(matches!(err, OrangeLogicError::Unauthorized), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(sim.stats().tokens_issued, 0);
}

#[tokio::test]
async fn search_streams_every_page_up_to_the_last() {
    let sim = sim(SimConfig::default()).await;
    for n in 0..250 {
        sim.add_asset(&[
            ("CoreField.Title", &format!("Asset {n}")),
            (
                "Custom.Campaign",
                if n % 2 == 0 { "SUMMER26" } else { "WINTER26" },
            ),
        ]);
    }
    let client = client(&sim);
    let query = SearchQuery {
        query: String::new(),
        fields: vec!["RecordID".into(), "CoreField.Title".into()],
        per_page: 100,
        sort: None,
    };
    let pages: Vec<_> = client.search(query).try_collect().await.expect("pages");
    assert_eq!(
        pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    assert_eq!(pages[0].total, Some(250));
    let mut ids: Vec<_> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|i| i["RecordID"].to_string()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no item twice, none missing");
    assert_eq!(sim.stats().searches, 3);
    assert_eq!(
        sim.stats().next_pages_followed,
        2,
        "pages 2 and 3 came from NextPage.href"
    );

    let filtered = SearchQuery {
        query: "Custom.Campaign:SUMMER26".into(),
        fields: vec!["RecordID".into()],
        per_page: 200,
        sort: None,
    };
    let pages: Vec<_> = client.search(filtered).try_collect().await.expect("pages");
    assert_eq!(
        pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
        [100, 25],
        "page size capped at 100"
    );
}

#[tokio::test]
async fn a_get_refused_as_too_long_is_sent_again_as_a_post_form() {
    let sim = sim(SimConfig {
        max_url_len: 300,
        ..SimConfig::default()
    })
    .await;
    sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client_with(&sim, |s| s.max_get_url_len = 100_000);
    let long_query = format!(
        "CoreField.Title:Bridge {}",
        "CoreField.Title:Bridge ".repeat(20)
    );
    let pages: Vec<_> = client
        .search(SearchQuery {
            query: long_query,
            fields: vec!["RecordID".into()],
            per_page: 10,
            sort: None,
        })
        .try_collect()
        .await
        .expect("search");
    assert_eq!(pages[0].items.len(), 1);
    assert_eq!(sim.stats().statuses.get(&403), Some(&1));
}

#[tokio::test]
async fn datatable_updates_apply_the_operators() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Old"), ("CoreField.Keywords", "bridge")]);
    let client = client(&sim);
    client
        .update_record(
            &id,
            &[
                FieldUpdate::set("CoreField.Title", "New"),
                FieldUpdate {
                    field: "CoreField.Keywords".into(),
                    op: FieldOp::AddCreating,
                    values: vec!["river".into(), "dusk".into()],
                },
                FieldUpdate::set("CoreField.Status", "Ready for Review"),
            ],
        )
        .await
        .expect("update");
    let asset = sim.asset(&id).expect("asset");
    assert_eq!(asset.fields["CoreField.Title"], "New");
    assert_eq!(asset.fields["CoreField.Keywords"], "bridge|river|dusk");
    client
        .update_record(
            &id,
            &[FieldUpdate {
                field: "CoreField.Keywords".into(),
                op: FieldOp::Remove,
                values: vec!["river".into()],
            }],
        )
        .await
        .expect("remove");
    assert_eq!(
        sim.asset(&id).expect("asset").fields["CoreField.Keywords"],
        "bridge|dusk"
    );
}

#[tokio::test]
async fn a_misspelt_field_and_a_value_outside_the_list_are_permanent_failures() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let client = client(&sim);
    let misspelt = client
        .update_record(&id, &[FieldUpdate::set("Custom.Campain", "X")])
        .await
        .expect_err("ignored parameter");
    assert!(
        matches!(&misspelt, OrangeLogicError::Failed { code, .. } if code == "IgnoredParameters"),
        "{misspelt:?}"
    );
    let outside = client
        .update_record(&id, &[FieldUpdate::set("CoreField.Status", "Maybe")])
        .await
        .expect_err("failure inside 200");
    assert!(matches!(&outside, OrangeLogicError::Failed { code, .. } if code == "ERROR"));
    assert!(!misspelt.is_retryable() && !outside.is_retryable());
}

#[tokio::test]
async fn an_asset_moves_to_a_folder_and_comments_are_appended() {
    let sim = sim(SimConfig::default()).await;
    let folder = sim.add_folder("Projects/Bridge/Field");
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    client.move_to_folder(&id, &folder).await.expect("move");
    client
        .append_to_field(&id, "Custom.WhatsAppLog", "2026-11-26 approver A: approved")
        .await
        .expect("first line");
    client
        .append_to_field(
            &id,
            "Custom.WhatsAppLog",
            "2026-11-26 region EMEA:\nreceived",
        )
        .await
        .expect("second line");
    let asset = sim.asset(&id).expect("asset");
    assert_eq!(asset.fields["CoreField.Parent-folder"], folder);
    assert_eq!(
        asset.fields["Custom.WhatsAppLog"],
        "2026-11-26 approver A: approved\n2026-11-26 region EMEA: received"
    );
    let err = client
        .move_to_folder(&id, "NO-SUCH-FOLDER")
        .await
        .expect_err("unknown folder");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_share_link_carries_its_expiry_and_works_until_then() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let identifier = sim.asset(&id).expect("asset").identifier;
    let client = client(&sim);
    let link = client
        .share_link(&identifier, "TR1", "2099-01-01T00:00:00")
        .await
        .expect("link");
    assert_eq!(link.expires_at.as_deref(), Some("2099-01-01T00:00:00"));
    let fetched = reqwest::get(&link.url).await.expect("fetch");
    assert_eq!(fetched.status().as_u16(), 200);
    let expired = client
        .share_link(&identifier, "TR1", "2000-01-01T00:00:00")
        .await
        .expect("link");
    assert_eq!(
        reqwest::get(&expired.url)
            .await
            .expect("fetch")
            .status()
            .as_u16(),
        410
    );
    let missing = client
        .share_link("NOPE", "TR1", "2099-01-01T00:00:00")
        .await
        .expect_err("unknown asset");
    assert!(matches!(missing, OrangeLogicError::NotFound), "{missing:?}");
}

/// Larger than every in-memory cap elsewhere in the bundle (Meta's 3 MiB webhook body, the
/// 10 MiB API Gateway payload, SQS's 256 KiB).
const LARGE_UPLOAD_BYTES: usize = 48 * 1024 * 1024;

fn temp_file(name: &str, bytes: usize) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("temp file");
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("write");
        left -= n;
    }
    path
}

fn sha256_of(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    shared::crypto::sha256_hex(&[&bytes])
}

#[tokio::test]
async fn a_file_larger_than_every_memory_cap_is_streamed_intact() {
    let sim = sim(SimConfig::default()).await;
    let folder = sim.add_folder("WhatsApp/Field/Unsorted");
    let path = temp_file("large.mp4", LARGE_UPLOAD_BYTES);
    let client = client(&sim);
    let started = Instant::now();
    let uploaded = client
        .upload_new_media(
            &NewMedia {
                folder: folder.clone(),
                file_name: "site-visit.mp4".into(),
                metadata: vec![("CoreField.ProjectTag".into(), "BRIDGE-7".into())],
                upload_mode: "ProcessFullyInBackground".into(),
            },
            || open_file(&path),
        )
        .await
        .expect("upload");
    let elapsed = started.elapsed();
    let asset = sim
        .asset_by_identifier(&uploaded.identifier)
        .expect("created");
    assert_eq!(
        uploaded.record_id.as_deref(),
        Some(asset.record_id.as_str())
    );
    assert_eq!(asset.versions[0].size, LARGE_UPLOAD_BYTES as u64);
    assert_eq!(asset.versions[0].sha256, sha256_of(&path));
    assert_eq!(asset.fields["CoreField.ProjectTag"], "BRIDGE-7");
    assert_eq!(asset.fields["CoreField.Parent-folder"], folder);
    eprintln!(
        "measured: streamed upload of {} MiB in {} ms",
        LARGE_UPLOAD_BYTES / (1024 * 1024),
        elapsed.as_millis()
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_upload_after_a_token_expiry_reopens_the_file_and_succeeds() {
    let sim = sim(SimConfig::default()).await;
    let folder = sim.add_folder("WhatsApp/Field/Unsorted");
    let path = temp_file("small.jpg", 300 * 1024);
    let client = client(&sim);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.expire_tokens();
    let uploaded = client
        .upload_new_media(
            &NewMedia {
                folder,
                file_name: "photo.jpg".into(),
                metadata: Vec::new(),
                upload_mode: "ProcessInLine".into(),
            },
            || open_file(&path),
        )
        .await
        .expect("upload");
    let asset = sim
        .asset_by_identifier(&uploaded.identifier)
        .expect("created");
    assert_eq!(asset.versions[0].sha256, sha256_of(&path));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_upload_into_a_missing_folder_fails_inside_http_200() {
    let sim = sim(SimConfig::default()).await;
    let path = temp_file("orphan.jpg", 10 * 1024);
    let err = client(&sim)
        .upload_new_media(
            &NewMedia {
                folder: "NO-SUCH-FOLDER".into(),
                file_name: "photo.jpg".into(),
                metadata: Vec::new(),
                upload_mode: "ProcessInLine".into(),
            },
            || open_file(&path),
        )
        .await
        .expect_err("no folder");
    assert!(matches!(err, OrangeLogicError::Failed { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_while_streaming() {
    let sim = sim(SimConfig {
        max_upload_bytes: 1024 * 1024,
        ..SimConfig::default()
    })
    .await;
    let folder = sim.add_folder("WhatsApp/Field/Unsorted");
    let path = temp_file("too-big.mp4", 8 * 1024 * 1024);
    let err = client(&sim)
        .upload_new_media(
            &NewMedia {
                folder,
                file_name: "too-big.mp4".into(),
                metadata: Vec::new(),
                upload_mode: "ProcessInLine".into(),
            },
            || open_file(&path),
        )
        .await
        .expect_err("too large");
    assert!(
        matches!(err, OrangeLogicError::Client { status: 413 }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(sim.asset_count(), 0);
    let capped = client_with(&sim, |s| s.max_upload_bytes = 1024 * 1024)
        .upload_new_media(
            &NewMedia {
                folder: "any".into(),
                file_name: "too-big.mp4".into(),
                metadata: Vec::new(),
                upload_mode: "ProcessInLine".into(),
            },
            || open_file(&path),
        )
        .await
        .expect_err("refused before sending");
    assert!(
        matches!(capped, OrangeLogicError::MediaTooLarge { .. }),
        "{capped:?}"
    );
    assert_eq!(
        sim.stats().statuses.get(&413),
        Some(&1),
        "nothing sent the second time"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn throttling_outages_and_server_errors_are_retryable() {
    let sim = sim(SimConfig::default()).await;
    let client = client(&sim);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.fail_next(&[429, 500]);
    let throttled = client.read_record("RecordID", "X").await.expect_err("429");
    assert!(
        matches!(throttled, OrangeLogicError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(1)),
        "{throttled:?}"
    );
    let failed = client.read_record("RecordID", "X").await.expect_err("500");
    assert!(matches!(failed, OrangeLogicError::Server { status: 500 }));
    sim.unavailable_for(Duration::from_millis(300));
    let unavailable = client.read_record("RecordID", "X").await.expect_err("503");
    assert!(matches!(
        unavailable,
        OrangeLogicError::Server { status: 503 }
    ));
    assert!(throttled.is_retryable() && failed.is_retryable() && unavailable.is_retryable());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        client.read_record("RecordID", "X").await.expect("back"),
        None
    );
}

#[tokio::test]
async fn a_slow_instance_times_out_as_a_retryable_transport_error() {
    let sim = sim(SimConfig::default()).await;
    let client = client_with(&sim, |s| s.timeout = Duration::from_millis(300));
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.slow(Duration::from_secs(2));
    let err = client
        .read_record("RecordID", "X")
        .await
        .expect_err("timeout");
    assert!(matches!(err, OrangeLogicError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn legacy_apis_answer_xml_unless_json_is_asked_for() {
    let sim = sim(SimConfig {
        static_tokens: vec!["t".into()],
        ..SimConfig::default()
    })
    .await;
    sim.add_asset(&[("CoreField.Title", "Fish & Chips")]);
    let http = reqwest::Client::new();
    let get = |format: &str| {
        http.get(format!(
            "{}/API/Search/v4.0/Search?query=&fields=CoreField.Title{format}",
            sim.url()
        ))
        .bearer_auth("t")
        .send()
    };
    let xml = get("").await.expect("xml").text().await.expect("body");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<CoreField.Title>Fish &amp; Chips</CoreField.Title>"),
        "{xml}"
    );
    let json: serde_json::Value = get("&format=json")
        .await
        .expect("json")
        .json()
        .await
        .expect("json body");
    assert_eq!(
        json["APIResponse"]["Items"][0]["CoreField.Title"],
        "Fish & Chips"
    );
}

#[tokio::test]
async fn a_hundred_thousand_generated_assets_can_be_scanned() {
    let sim = sim(SimConfig::default()).await;
    let started = Instant::now();
    sim.generate(100_000, 7);
    let generated = started.elapsed();
    assert_eq!(sim.asset_count(), 100_000);
    let client = client(&sim);
    let started = Instant::now();
    let pages: Vec<_> = client
        .search(SearchQuery {
            query: "CoreField.Status:\"Ready for Review\" AND Custom.Region:EMEA".into(),
            fields: vec!["RecordID".into(), "CoreField.ExpirationDate".into()],
            per_page: 100,
            sort: None,
        })
        .try_collect()
        .await
        .expect("scan");
    let scanned = started.elapsed();
    let found: usize = pages.iter().map(|p| p.items.len()).sum();
    assert_eq!(Some(found as u64), pages[0].total);
    // One in five statuses and one in four regions: about 5,000 assets.
    assert!((4_000..6_000).contains(&found), "{found}");
    eprintln!(
        "measured: generated 100000 assets in {} ms; scanned {found} matches in {} pages in {} ms",
        generated.as_millis(),
        pages.len(),
        scanned.as_millis()
    );
}

#[tokio::test]
async fn the_sample_seed_file_loads_folders_and_assets() {
    let sim = sim(SimConfig::default()).await;
    let loaded = sim
        .seed_file(&local::moto::workspace_root().join("local/orange-logic-seed.json"))
        .expect("seed");
    assert_eq!(loaded, 3);
    let pages: Vec<_> = client(&sim)
        .search(SearchQuery {
            query: "CoreField.DocSubType:Campaign-Package".into(),
            fields: vec!["RecordID".into(), "Custom.Approvers".into()],
            per_page: 10,
            sort: None,
        })
        .try_collect()
        .await
        .expect("search");
    assert_eq!(pages[0].items.len(), 1);
    assert_eq!(
        pages[0].items[0]["Custom.Approvers"],
        "approver-1|approver-2"
    );
}

/// A subscriber answering 503 `failures` times, then 200; records the event ids it saw.
async fn flaky_subscriber(
    failures: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let record = Arc::clone(&record);
            async move {
                let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                seen.push(
                    event["events"][0]["eventId"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
                if seen.len() > failures {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn webhooks_are_retried_with_the_same_event_id_up_to_five_times() {
    let config = SimConfig {
        webhook_retry_delay: Duration::from_millis(5),
        ..SimConfig::default()
    };
    let sim = sim(config).await;
    let (url, seen) = flaky_subscriber(3).await;
    sim.subscribe(orange_logic_sim::WebhookTarget {
        url,
        header: "x-dam-webhook-secret".into(),
        secret: "s".into(),
    });
    let id = sim.add_asset(&[("CoreField.Title", "A")]);
    sim.edit(&id, "CoreField.Title", "B").expect("edit");
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Created: 3 refusals then success; edited: success at once.
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen[..4].iter().all(|e| *e == seen[0]), "{seen:?}");
    assert_ne!(seen[4], seen[0], "each change has its own event id");

    let (url, seen) = flaky_subscriber(usize::MAX).await;
    sim.subscribe(orange_logic_sim::WebhookTarget {
        url,
        header: "x-dam-webhook-secret".into(),
        secret: "s".into(),
    });
    sim.edit(&id, "CoreField.Title", "C").expect("edit");
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    assert_eq!(
        seen.lock().unwrap_or_else(|e| e.into_inner()).len(),
        6,
        "one attempt and five retries, then given up"
    );
}

#[tokio::test]
async fn muted_writes_do_not_come_back_as_webhooks() {
    let sim = sim(SimConfig::default()).await;
    let (url, seen) = flaky_subscriber(0).await;
    let id = sim.add_asset(&[("CoreField.Title", "A")]);
    sim.subscribe(orange_logic_sim::WebhookTarget {
        url,
        header: "x-dam-webhook-secret".into(),
        secret: "s".into(),
    });
    let muted = client_with(&sim, |s| s.mute_webhook_topics = Some("*".into()));
    muted
        .update_record(&id, &[FieldUpdate::set("CoreField.Title", "B")])
        .await
        .expect("update");
    assert!(sim.wait_for_webhooks(Duration::from_secs(5)).await);
    assert!(seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
    client(&sim)
        .update_record(&id, &[FieldUpdate::set("CoreField.Title", "C")])
        .await
        .expect("update");
    assert!(sim.wait_for_webhooks(Duration::from_secs(5)).await);
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 1);
}
