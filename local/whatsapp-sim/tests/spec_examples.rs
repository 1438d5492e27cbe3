//! The simulator against Meta's published send examples (a conformance check: it needs the spec
//! beside the repository and says plainly when it is skipped), and the rules it keeps without it.

use serde_json::{Value, json};
use whatsapp_sim::spec::{Spec, spec_for_conformance_check};
use whatsapp_sim::world::{ButtonDef, HeaderDef};
use whatsapp_sim::{Limits, SimConfig, Simulator, TemplateDef};

const TOKEN: &str = "sim-access-token";
const APP_SECRET: &str = "sim-app-secret";

/// The template a spec example uses, as the WABA would have it approved.
fn template_of(body: &Value) -> Option<TemplateDef> {
    let template = body.get("template")?;
    let components = template["components"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = |t: &str| {
        components.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|ct| ct.eq_ignore_ascii_case(t))
        })
    };
    let params = |c: Option<&Value>| {
        c.and_then(|c| c["parameters"].as_array().cloned())
            .unwrap_or_default()
    };
    let body_params: Vec<String> = params(of("body"))
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p["parameter_name"]
                .as_str()
                .map_or_else(|| (i + 1).to_string(), str::to_owned)
        })
        .collect();
    let header = params(of("header"));
    let header = match header.first().and_then(|p| p["type"].as_str()) {
        None => HeaderDef::None,
        Some("image") => HeaderDef::Image,
        Some("video") => HeaderDef::Video,
        Some("document") => HeaderDef::Document,
        Some(_) => HeaderDef::Text(header.len()),
    };
    let buttons = components.iter().filter(|c| c["type"] == "button").count();
    Some(TemplateDef {
        name: template["name"].as_str()?.to_owned(),
        language: template["language"]["code"].as_str()?.to_owned(),
        category: "UTILITY".into(),
        header,
        body_params,
        buttons: vec![ButtonDef::QuickReply; buttons.max(3)],
    })
}

async fn post(sim: &Simulator, body: &Value) -> (u16, Value) {
    let url = format!(
        "{}/v23.0/{}/messages",
        sim.base_url(),
        sim.config().phone_number_id
    );
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn the_simulator_accepts_all_fifty_send_examples_of_the_spec() {
    let Some(path) =
        spec_for_conformance_check("the_simulator_accepts_all_fifty_send_examples_of_the_spec")
    else {
        return;
    };
    let spec = Spec::load(&path).expect("spec");
    let mut examples = spec.message_examples();
    assert_eq!(examples.len(), 50);
    // Template names such as `template-name` are placeholders standing for different templates;
    // each example gets its own approved template of the shape it sends.
    for (i, (_, body)) in examples.iter_mut().enumerate() {
        if let Some(name) = body.pointer_mut("/template/name") {
            *name = json!(format!("{}_{i}", name.as_str().unwrap_or_default()));
        }
    }
    let mut config = SimConfig::new(TOKEN, APP_SECRET);
    config.spec_path = path;
    config.limits = Limits {
        pair_burst: 100,
        ..Limits::default()
    };
    config
        .templates
        .extend(examples.iter().filter_map(|(_, body)| template_of(body)));
    let sim = Simulator::start(config).await.expect("simulator");
    for (name, body) in &examples {
        let (status, answer) = post(&sim, body).await;
        if body.get("status").is_some() {
            // The schema accepts it; Meta's rule refuses a wamid it never delivered.
            assert_eq!(
                (status, answer["error"]["code"].clone()),
                (400, json!(131_009)),
                "{name}"
            );
        } else {
            assert_eq!(status, 200, "{name}: {answer}");
            assert!(
                answer["messages"][0]["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("wamid.")),
                "{name}"
            );
        }
    }
    let broken = json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}, "extra": 1});
    let (_, answer) = post(&sim, &broken).await;
    assert_eq!(answer["error"]["code"], 100);
    assert!(
        answer["error"]["error_data"]["details"]
            .as_str()
            .is_some_and(|d| d.contains("extra"))
    );
}

#[tokio::test]
async fn a_messaging_product_other_than_whatsapp_is_an_invalid_parameter() {
    let sim = Simulator::start(SimConfig::new(TOKEN, APP_SECRET))
        .await
        .expect("simulator");
    let wrong_product =
        json!({"messaging_product": "sms", "to": "1", "type": "text", "text": {"body": "x"}});
    let (status, answer) = post(&sim, &wrong_product).await;
    assert_eq!((status, answer["error"]["code"].clone()), (400, json!(100)));
}
