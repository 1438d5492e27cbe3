//! Templates as code against the simulator: `connector templates submit` and `status` show
//! PENDING, then APPROVED or REJECTED with Meta's reason; the simulator refuses what Meta refuses;
//! an approved submission is sendable with the values its file documents.

use connector::graph::{GraphTarget, TemplateApi};
use connector::templates_cmd;
use e2e::APP_SECRET;
use serde_json::json;
use shared::secrets::Secret;
use shared::templates::Catalogue;
use shared::whatsapp::errors::ApiError;
use std::path::PathBuf;
use whatsapp_sim::{ReviewStatus, SimConfig, Simulator};

const TOKEN: &str = "sim-access-token";

fn catalogue_dir() -> PathBuf {
    local::moto::workspace_root().join("templates")
}

fn configured() -> templates_cmd::Configured {
    let path = local::moto::workspace_root().join("local/connector.yaml");
    shared::connector_config::ConnectorConfig::parse(
        &std::fs::read_to_string(path).expect("local/connector.yaml"),
    )
    .expect("configuration")
    .whatsapp
    .templates
}

async fn simulator() -> (Simulator, TemplateApi) {
    simulator_with(SimConfig::new(TOKEN, APP_SECRET)).await
}

async fn simulator_with(config: SimConfig) -> (Simulator, TemplateApi) {
    let sim = Simulator::start(config).await.expect("simulator");
    let api = TemplateApi::new(GraphTarget {
        base_url: sim.base_url().to_owned(),
        version: "v23.0".into(),
        waba_id: sim.config().waba_id.clone(),
        token: Secret::new(TOKEN),
    })
    .expect("client")
    // Small pages, so every list follows Meta's `paging.next` several times.
    .with_page_size(5);
    (sim, api)
}

fn line<'a>(report: &'a connector::report::Report, prefix: &str) -> &'a str {
    report
        .lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}` in {:#?}", report.lines))
}

#[tokio::test]
async fn submitted_templates_show_pending_then_approved_or_rejected_with_the_reason() {
    let (sim, api) = simulator().await;
    let files = Catalogue::load(&catalogue_dir()).entries.len();
    sim.reject_templates_named("asset_share", "PROMOTIONAL");

    let submitted = templates_cmd::submit(&catalogue_dir(), &api)
        .await
        .expect("submit");
    assert!(submitted.ok, "{:#?}", submitted.lines);
    assert!(
        line(&submitted, "content_receipt en_US: submitted as ").ends_with("PENDING (UTILITY)")
    );
    assert_eq!(sim.submitted_templates().len(), files);

    let pending = templates_cmd::status(&catalogue_dir(), &api, None)
        .await
        .expect("status");
    assert_eq!(
        line(&pending, "asset_share fr_FR:"),
        "asset_share fr_FR: PENDING"
    );

    assert_eq!(sim.review_templates(), files);
    let reviewed = templates_cmd::status(&catalogue_dir(), &api, Some(&configured()))
        .await
        .expect("status");
    assert_eq!(
        line(&reviewed, "asset_share en_US:"),
        "asset_share en_US: REJECTED (PROMOTIONAL)"
    );
    assert_eq!(
        line(&reviewed, "asset_review_request fr_FR:"),
        "asset_review_request fr_FR: APPROVED"
    );
    // The configured asset_share template cannot be sent: the status says so and fails.
    assert!(!reviewed.ok);
    assert_eq!(
        line(&reviewed, "whatsapp.templates.asset_share:"),
        "whatsapp.templates.asset_share: `asset_share` in en_US cannot be sent yet (REJECTED (PROMOTIONAL))"
    );
    assert_eq!(
        reviewed
            .lines
            .iter()
            .filter(|l| l.starts_with("whatsapp.templates."))
            .count(),
        1,
        "{:#?}",
        reviewed.lines
    );
    // Templates the WABA had before (the simulator's defaults) are listed as not in the catalogue.
    assert!(
        reviewed
            .lines
            .iter()
            .any(|l| l == "hello_world en_US: in the WABA only, not in the catalogue")
    );

    let again = templates_cmd::submit(&catalogue_dir(), &api)
        .await
        .expect("submit again");
    assert_eq!(
        again.lines.last().map(String::as_str),
        Some(format!("0 submitted, {files} already in the WABA").as_str())
    );
    assert_eq!(
        line(&again, "asset_share en_US:"),
        "asset_share en_US: already in the WABA, REJECTED (PROMOTIONAL)"
    );
}

#[tokio::test]
async fn an_approved_submission_is_sendable_with_the_values_its_file_documents() {
    let (sim, api) = simulator().await;
    // The simulated user the template goes to.
    sim.user("447700900123");
    let catalogue = Catalogue::load(&catalogue_dir());
    let receipt = catalogue
        .get("content_receipt", "es_ES")
        .expect("catalogue template");
    let send = |values: &[&str]| {
        let body = json!({
            "messaging_product": "whatsapp",
            "to": "447700900123",
            "type": "template",
            "template": {
                "name": "content_receipt",
                "language": {"code": "es_ES"},
                "components": [{"type": "body", "parameters":
                    values.iter().map(|v| json!({"type": "text", "text": v})).collect::<Vec<_>>()}]
            }
        });
        let url = format!(
            "{}/v23.0/{}/messages",
            sim.base_url(),
            sim.config().phone_number_id
        );
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    };
    let values = ["foto", "Projects/Bridge/Field", "A-1"];
    assert_eq!(receipt.parameters.body.len(), values.len());
    let (_, before) = send(&values).await;
    assert_eq!(
        before["error"]["code"], 132_001,
        "not sendable before review"
    );

    api.create(receipt).await.expect("create");
    let (_, pending) = send(&values).await;
    assert_eq!(
        pending["error"]["code"], 132_001,
        "not sendable while pending"
    );

    sim.review_templates();
    let (status, sent) = send(&values).await;
    assert_eq!(status, 200, "{sent}");
    assert!(sent["messages"][0]["id"].is_string());
    let (_, short) = send(&values[..2]).await;
    assert_eq!(
        short["error"]["code"], 132_000,
        "a missing value is refused"
    );
}

#[tokio::test]
async fn the_simulator_refuses_what_meta_refuses_and_names_the_field() {
    let (sim, api) = simulator().await;
    let catalogue = Catalogue::load(&catalogue_dir());
    let mut broken = catalogue
        .get("asset_issue_alert", "en_US")
        .expect("template")
        .clone();
    broken.components[1].text = Some("The asset {{1}} needs {{3}} attention.".into());
    let Err(ApiError::Graph { status, error }) = api.create(&broken).await else {
        panic!("a broken template was accepted");
    };
    assert_eq!((status, error.code), (400, 100));
    let details = error.error_data.and_then(|d| d.details).unwrap_or_default();
    assert!(
        details.starts_with("components[1].text: has {{3}} where {{2}}"),
        "{details}"
    );

    let mut duplicate = broken.clone();
    duplicate.name = "hello_world".into();
    duplicate.components[1].text = Some("Hello {{1}} and {{2}}, fix {{3}} now.".into());
    let Err(ApiError::Graph { error, .. }) = api.create(&duplicate).await else {
        panic!("a second hello_world en_US was accepted");
    };
    assert!(
        error
            .error_data
            .and_then(|d| d.details)
            .is_some_and(|d| d.contains("already exists"))
    );
    assert!(sim.submitted_templates().is_empty());

    let mut rejected = catalogue
        .get("asset_share", "en_US")
        .expect("template")
        .clone();
    // The simulator's HTTP switch, as the demo uses it.
    let switch = reqwest::Client::new()
        .post(format!("{}/sim/templates/rejections", sim.base_url()))
        .json(&json!({"name": "asset_share", "reason": "INVALID_FORMAT"}))
        .send()
        .await
        .expect("switch");
    assert!(switch.status().is_success());
    api.create(&rejected).await.expect("create");
    let review = reqwest::Client::new()
        .post(format!("{}/sim/templates/review", sim.base_url()))
        .send()
        .await
        .expect("review");
    let review: serde_json::Value = review.json().await.expect("json");
    assert_eq!(review["reviewed"], 1);
    assert_eq!(
        sim.submitted_templates(),
        vec![(
            "asset_share".into(),
            "en_US".into(),
            ReviewStatus::Rejected("INVALID_FORMAT".into())
        )]
    );
    // A corrected resubmission replaces the rejected one and is reviewed again.
    rejected.components[0].text = rejected.components[0]
        .text
        .as_ref()
        .map(|t| t.replace("Hello, ", "Hi, "));
    api.create(&rejected).await.expect("resubmit");
    assert_eq!(
        sim.submitted_templates(),
        vec![("asset_share".into(), "en_US".into(), ReviewStatus::Pending)]
    );
}

#[tokio::test]
async fn a_stack_may_start_with_the_catalogue_templates_already_approved() {
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    config
        .templates
        .extend(whatsapp_sim::catalogue_templates(&catalogue_dir()));
    let (sim, api) = simulator_with(config).await;
    let status = templates_cmd::status(&catalogue_dir(), &api, Some(&configured()))
        .await
        .expect("status");
    assert!(status.ok, "{:#?}", status.lines);
    assert_eq!(
        line(&status, "rights_expiry_alert fr_FR:"),
        "rights_expiry_alert fr_FR: APPROVED"
    );
    assert!(sim.submitted_templates().is_empty());
}
