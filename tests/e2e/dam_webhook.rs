//! The DAM webhook edge on the local stack: each event of a POST is judged on its own.

use e2e::{TestEnv, event_file};

const SECRET_HEADER: &str = "x-dam-webhook-secret";
const SECRET: &str = "local-dam-webhook-secret";

/// The body of an API Gateway event file of `events/dam-webhook/`.
fn body_of(file: &str) -> String {
    let event: serde_json::Value =
        serde_json::from_str(&event_file(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    event["body"].as_str().unwrap_or_default().to_owned()
}

async fn post(env: &TestEnv, body: String) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(env.stack.url("/dam/webhook"))
        .header(SECRET_HEADER, SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, answer)
}

#[tokio::test]
async fn a_post_of_four_good_events_and_one_bad_enqueues_the_four_and_reports_the_index() {
    let env = TestEnv::start().await;
    let (status, answer) = post(&env, body_of("dam-webhook/one-bad-event.json")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["enqueued"], 4);
    assert_eq!(answer["rejected"][0]["index"], 3, "{answer}");
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(1));
    let mut ids: Vec<String> = env
        .receive_all("DamEventsQueue")
        .await
        .iter()
        .map(|body| {
            let event: serde_json::Value = serde_json::from_str(body).expect("a DAM event");
            event["event_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "evt-91c0a001",
            "evt-91c0a002",
            "evt-91c0a003",
            "evt-91c0a005"
        ]
    );
}

#[tokio::test]
async fn a_post_whose_events_are_all_bad_is_refused_and_enqueues_nothing() {
    let env = TestEnv::start().await;
    let (status, answer) = post(
        &env,
        r#"{"events":[null,{"eventId":7,"topic":"asset.edited","recordId":"R1"}]}"#.to_owned(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["rejected"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    assert_eq!(env.queue_depth("DamEventsQueue").await, 0);
}
