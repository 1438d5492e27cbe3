//! The simulator alone, over raw HTTP: the documented answer shapes and each strictness switch.

use orange_logic_sim::{
    Behaviour, DateStyle, RetryAfterStyle, SessionExpiry, SimConfig, Simulator, WebhookTarget,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "static-token";

async fn sim_with(tune: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig {
        static_tokens: vec![TOKEN.into()],
        ..SimConfig::default()
    };
    tune(&mut config);
    Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator")
}

async fn sim() -> Simulator {
    sim_with(|_| {}).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get(sim: &Simulator, path_and_query: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path_and_query}", sim.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
}

async fn post(sim: &Simulator, path: &str, form: &[(&str, &str)]) -> Value {
    http()
        .post(format!("{}{path}?format=json", sim.url()))
        .bearer_auth(TOKEN)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn legacy_apis_answer_xml_unless_json_is_asked_for() {
    let sim = sim().await;
    sim.add_asset(&[("CoreField.Title", "Fish & Chips")]);
    let xml = get(
        &sim,
        "/API/Search/v4.0/Search?query=&fields=CoreField.Title",
    )
    .await
    .text()
    .await
    .expect("body");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<CoreField.Title>Fish &amp; Chips</CoreField.Title>"),
        "{xml}"
    );
    let json: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=&fields=CoreField.Title&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        json["APIResponse"]["Items"][0]["CoreField.Title"],
        "Fish & Chips"
    );
}

#[tokio::test]
async fn a_get_over_the_documented_260_characters_is_refused() {
    let sim = sim().await;
    let long = format!(
        "/API/DataTable/v2.2/Documents.All:Read?RecordID=X&format=json&pad={}",
        "x".repeat(260)
    );
    assert_eq!(get(&sim, &long).await.status().as_u16(), 403);
    let short = "/API/DataTable/v2.2/Documents.All:Read?RecordID=X&format=json";
    assert_eq!(get(&sim, short).await.status().as_u16(), 200);
}

#[tokio::test]
async fn only_documented_resources_verbs_and_keys_are_accepted() {
    let sim = sim().await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let identifier = sim.asset(&id).expect("asset").identifier;
    let on_all = post(
        &sim,
        "/API/DataTable/v2.2/Documents.All:Update",
        &[("RecordID", &id), ("CoreField.Title:", "New")],
    )
    .await;
    assert_eq!(on_all["APIResponse"]["Code"], "UNSUPPORTED_OPERATION");
    let unknown = post(
        &sim,
        "/API/DataTable/v2.2/Assets:Read",
        &[("RecordID", &id)],
    )
    .await;
    assert_eq!(unknown["APIResponse"]["Code"], "INVALID_RESOURCE");
    let wrong_subtype = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Video.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("CoreField.Title:", "New"),
        ],
    )
    .await;
    assert_eq!(wrong_subtype["Response"]["Code"], "RECORD_NOT_FOUND");
    let updated = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Image.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("CoreField.Title:", "New"),
        ],
    )
    .await;
    assert_eq!(
        updated["Response"]["RecordsAffected"][0]["Result"]["Code"],
        "SUCCESS"
    );
    assert_eq!(
        sim.asset(&id).expect("asset").fields["CoreField.Title"],
        "New"
    );
}

#[tokio::test]
async fn update_failures_come_back_inside_http_200_per_record() {
    let sim = sim().await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let identifier = sim.asset(&id).expect("asset").identifier;
    let failed = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Image.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("CoreField.Status:", "Maybe"),
        ],
    )
    .await;
    let result = &failed["Response"]["RecordsAffected"][0]["Result"];
    assert_eq!(result["Code"], "UPDATE_FAILED", "{failed}");
    assert!(
        result["ErrorList"][0]["ErrorDetails"].is_string(),
        "{failed}"
    );
    let misspelt = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Image.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("Custom.Campain:", "X"),
        ],
    )
    .await;
    assert_eq!(
        misspelt["RequestInterpretation"]["IgnoredParameters"][0],
        "Custom.Campain:"
    );
}

#[tokio::test]
async fn folders_resolve_by_record_id_only() {
    let sim = sim().await;
    let field = sim.add_folder_path("Projects/Bridge/Field");
    let id = sim.add_asset(&[("CoreField.Title", "A")]);
    let identifier = sim.asset(&id).expect("asset").identifier;
    let by_title = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Image.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("CoreField.Parent-folder:", "Projects/Bridge/Field"),
        ],
    )
    .await;
    assert_eq!(
        by_title["Response"]["RecordsAffected"][0]["Result"]["Code"],
        "UPDATE_FAILED"
    );
    let by_id = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Image.Default:Update",
        &[
            ("CoreField.Identifier", &identifier),
            ("CoreField.Parent-folder:", &field),
        ],
    )
    .await;
    assert_eq!(
        by_id["Response"]["RecordsAffected"][0]["Result"]["Code"],
        "SUCCESS"
    );
    let listed = post(
        &sim,
        "/API/DataTable/v2.2/Documents.Folder.Default:Read",
        &[("CoreField.Title", "Field")],
    )
    .await;
    assert_eq!(listed["Response"][0]["RecordID"], field.as_str());
    let bridge = sim.folder_at("Projects/Bridge").expect("bridge");
    assert_eq!(
        listed["Response"][0]["CoreField.Parent-folder"],
        bridge.record_id.as_str()
    );
}

#[tokio::test]
async fn an_expired_session_can_answer_a_login_page_or_a_redirect() {
    let sim = sim_with(|c| c.static_tokens.clear()).await;
    let path = "/API/DataTable/v2.2/Documents.All:Read?RecordID=X&format=json";
    assert_eq!(get(&sim, path).await.status().as_u16(), 401);
    sim.set_behaviour(|b| b.session_expiry = SessionExpiry::HtmlLoginPage);
    let page = get(&sim, path).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("body").contains("<html>"));
    sim.set_behaviour(|b| b.session_expiry = SessionExpiry::RedirectToLogin);
    let redirect = get(&sim, path).await;
    assert_eq!(redirect.status().as_u16(), 302);
    assert!(
        redirect.headers()["location"]
            .to_str()
            .expect("location")
            .starts_with("/Login")
    );
}

#[tokio::test]
async fn retry_after_can_be_an_http_date() {
    let sim = sim().await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::HttpDate(5));
    sim.fail_next(&[429, 503]);
    for status in [429, 503] {
        let answer = get(&sim, "/API/Search/v4.0/Search?query=&format=json").await;
        assert_eq!(answer.status().as_u16(), status);
        let date = answer.headers()["retry-after"]
            .to_str()
            .expect("date")
            .to_owned();
        assert!(date.ends_with(" GMT") && date.contains(", "), "{date}");
    }
    assert_eq!(sim.stats().retry_after_dates.len(), 2);
}

#[tokio::test]
async fn searches_without_global_info_and_with_an_ignored_page_number() {
    let sim = sim_with(|c| {
        c.behaviour = Behaviour {
            global_info: false,
            ..Behaviour::default()
        }
    })
    .await;
    for n in 0..3 {
        sim.add_asset(&[("CoreField.Title", &format!("A{n}"))]);
    }
    let page: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=&fields=RecordID&countperpage=2&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(page["APIResponse"].get("GlobalInfo").is_none(), "{page}");
    assert_eq!(
        page["APIResponse"]["Items"].as_array().map(Vec::len),
        Some(2)
    );
    sim.set_behaviour(|b| {
        b.global_info = true;
        b.ignore_page_number = true;
    });
    let far: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=&fields=RecordID&countperpage=2&pagenumber=50&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        far["APIResponse"]["Items"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(far["APIResponse"]["GlobalInfo"]["NextPage"]["href"].is_string());
}

#[tokio::test]
async fn dates_come_in_the_display_format_and_criteria_need_the_documented_one() {
    let sim = sim_with(|c| {
        c.time_zone = "America/New_York".into();
        c.behaviour.date_style = DateStyle::Display;
    })
    .await;
    sim.add_asset(&[
        ("CoreField.Title", "A"),
        ("CoreField.ExpirationDate", "2027-01-01T00:00:01"),
    ]);
    let found: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=CoreField.ExpirationDate%3E%3A2026-12-31T23.00.00&fields=CoreField.ExpirationDate&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        found["APIResponse"]["Items"][0]["CoreField.ExpirationDate"],
        "1/1/2027 12:00:01 AM"
    );
    let colons: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=CoreField.ExpirationDate%3E%3A2026-12-31T23%3A00%3A00&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(colons["APIResponse"]["Code"], "ERROR", "{colons}");
}

#[tokio::test]
async fn deleted_objects_are_listed_since_a_date() {
    let sim = sim().await;
    let id = sim.add_asset(&[("CoreField.Title", "A")]);
    assert!(sim.delete(&id));
    let listed: Value = get(
        &sim,
        "/webapi/objectmanagement/deletion/getdeletedobjects_45C_v1?StartDate=2000-01-01T00:00:00",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(listed["deletedObjects"][0]["recordID"], id.as_str());
    let none: Value = get(
        &sim,
        "/webapi/objectmanagement/deletion/getdeletedobjects_45C_v1?StartDate=2999-01-01T00:00:00",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(none["deletedObjects"].as_array().map(Vec::len), Some(0));
    let bad = get(
        &sim,
        "/webapi/objectmanagement/deletion/getdeletedobjects_45C_v1?Since=2000-01-01",
    )
    .await;
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn the_sample_seed_file_loads_folder_paths_and_assets() {
    let sim = sim().await;
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../orange-logic-seed.json");
    assert_eq!(sim.seed_file(&seed).expect("seed"), 3);
    let field = sim.folder_at("Projects/Bridge/Field").expect("folder path");
    let found: Value = get(
        &sim,
        "/API/Search/v4.0/Search?query=CoreField.DocSubType:Campaign-Package&fields=Custom.Approvers,CoreField.Parent-folder&format=json",
    )
    .await
    .json()
    .await
    .expect("json");
    let item = &found["APIResponse"]["Items"][0];
    assert_eq!(item["Custom.Approvers"], "approver-1|approver-2");
    assert_eq!(item["CoreField.Parent-folder"], field.record_id.as_str());
}

/// A subscriber answering 503 `failures` times, then 200; records the event ids it saw.
async fn flaky_subscriber(failures: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let record = Arc::clone(&record);
            async move {
                let event: Value = serde_json::from_str(&body).unwrap_or_default();
                let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                seen.push(
                    event["events"][0]["eventId"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
                if seen.len() > failures {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::SERVICE_UNAVAILABLE
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
    let sim = sim_with(|c| c.webhook_retry_delay = Duration::from_millis(5)).await;
    let (url, seen) = flaky_subscriber(3).await;
    sim.subscribe(WebhookTarget {
        url,
        header: "x-dam-webhook-secret".into(),
        secret: "s".into(),
    });
    let id = sim.add_asset(&[("CoreField.Title", "A")]);
    sim.edit(&id, "CoreField.Title", "B").expect("edit");
    assert!(sim.wait_for_webhooks(Duration::from_secs(10)).await);
    let seen_now = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Created: 3 refusals then success; edited: success at once.
    assert_eq!(seen_now.len(), 5, "{seen_now:?}");
    assert!(
        seen_now[..4].iter().all(|e| *e == seen_now[0]),
        "{seen_now:?}"
    );
    assert_ne!(seen_now[4], seen_now[0], "each change has its own event id");

    let (url, seen) = flaky_subscriber(usize::MAX).await;
    sim.subscribe(WebhookTarget {
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
