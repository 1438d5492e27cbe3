//! The Orange Logic client against the strict simulator: authentication and renewal (401, login
//! pages, redirects), answers that fail inside HTTP 200, paging with and without `GlobalInfo`,
//! DataTable routes and operators, long writes as POST, folder paths, streamed uploads, links,
//! retries within the invocation's deadline, and no URL or value in any error or log line.

use futures::TryStreamExt as _;
use orange_logic_sim::{RetryAfterStyle, SessionExpiry, SimConfig, Simulator, TokenStyle};
use shared::adapters::orange_logic::{
    Auth, FieldOp, FieldUpdate, NewMedia, OrangeLogicClient, OrangeLogicError, RetryPolicy,
    SearchQuery, SessionSign, Settings, TOKEN_PATH, open_file,
};
use shared::error::Retryable;
use shared::secrets::Secret;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber as _;

const CLIENT_ID: &str = "connector-local";
const CLIENT_SECRET: &str = "local-orange-logic-secret";

pub(crate) async fn sim(config: SimConfig) -> Simulator {
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

pub(crate) fn client_with(sim: &Simulator, tune: impl FnOnce(&mut Settings)) -> OrangeLogicClient {
    let mut settings = Settings::new(sim.url(), credentials(CLIENT_SECRET));
    tune(&mut settings);
    OrangeLogicClient::new(settings).expect("client")
}

/// Retries without waiting long: the tests are about what is retried, not about how long.
fn quick_retries(settings: &mut Settings) {
    settings.retry = RetryPolicy {
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
}

/// JSON log lines captured from the code run under [`Logs::subscriber`].
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        // The connector's own lines at every level; other crates at the deployed level (info).
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,shared=trace"))
            .with_writer(self.clone())
            .finish()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
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
async fn an_html_login_page_inside_http_200_renews_the_token_and_nothing_is_dropped() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.session_expiry = SessionExpiry::HtmlLoginPage);
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    client.read_record("RecordID", &id).await.expect("first");
    sim.expire_tokens();
    let record = client
        .read_record("RecordID", &id)
        .await
        .expect("renewed after the login page");
    assert_eq!(record.expect("record")["CoreField.Title"], "Bridge");
    assert_eq!(sim.stats().tokens_issued, 2);
}

#[tokio::test]
async fn a_redirect_to_a_login_page_renews_the_token_and_is_never_followed() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.session_expiry = SessionExpiry::RedirectToLogin);
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    client.read_record("RecordID", &id).await.expect("first");
    sim.expire_tokens();
    client
        .read_record("RecordID", &id)
        .await
        .expect("renewed after the redirect");
    let stats = sim.stats();
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(stats.statuses.get(&302), Some(&1));
    assert!(
        stats.calls.iter().all(|c| !c.path.starts_with("/login")),
        "the bearer token never went to the login page"
    );
}

#[tokio::test]
async fn a_login_page_that_outlives_a_renewal_is_a_retryable_auth_failure_with_the_alarm() {
    let sim = sim(SimConfig {
        static_tokens: vec!["static-token-1".into()],
        ..SimConfig::default()
    })
    .await;
    sim.set_behaviour(|b| b.session_expiry = SessionExpiry::HtmlLoginPage);
    let client = OrangeLogicClient::new(Settings::new(
        sim.url(),
        Auth::StaticBearer(Secret::new("revoked")),
    ))
    .expect("client");
    let logs = Logs::default();
    let err = client
        .read_record("RecordID", "X")
        .with_subscriber(logs.subscriber())
        .await
        .expect_err("login page");
    assert!(
        matches!(err, OrangeLogicError::SessionLost(SessionSign::HtmlPage)),
        "{err:?}"
    );
    assert!(err.is_retryable(), "the work goes back to its queue");
    assert!(
        logs.text().contains(r#""metric":"dam_auth_failure""#),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn an_xml_answer_is_a_retryable_error_naming_what_to_check() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.drop_format_parameter = true);
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let err = client(&sim)
        .read_record("RecordID", &id)
        .await
        .expect_err("xml");
    assert!(matches!(err, OrangeLogicError::Xml { .. }), "{err:?}");
    assert!(err.is_retryable(), "nothing is dropped");
    let text = err.to_string();
    assert!(
        text.contains("format=json") && text.contains("ORANGE_LOGIC_BASE_URL"),
        "{text}"
    );
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
async fn refused_client_credentials_are_retried_later_and_raise_the_auth_alarm() {
    let sim = sim(SimConfig::default()).await;
    let client =
        OrangeLogicClient::new(Settings::new(sim.url(), credentials("wrong"))).expect("client");
    let logs = Logs::default();
    let err = client
        .read_record("RecordID", "X")
        .with_subscriber(logs.subscriber())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, OrangeLogicError::AuthRejected { status: 401 }),
        "{err:?}"
    );
    assert!(err.is_retryable() && err.is_auth_failure());
    assert!(logs.text().contains(r#""metric":"dam_auth_failure""#));
    assert!(
        !logs.text().contains("wrong"),
        "the secret never reaches a log"
    );
}

#[tokio::test]
async fn a_static_bearer_token_works_and_a_revoked_one_is_a_retryable_auth_failure() {
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
    assert!(err.is_retryable() && err.is_auth_failure());
    assert_eq!(sim.stats().tokens_issued, 0);
}

fn all_assets(per_page: u8) -> SearchQuery {
    SearchQuery {
        query: String::new(),
        fields: vec!["RecordID".into(), "CoreField.Title".into()],
        per_page,
        sort: None,
    }
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
    let pages: Vec<_> = client
        .search(all_assets(100))
        .try_collect()
        .await
        .expect("pages");
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
async fn three_hundred_matching_assets_without_global_info_are_all_read() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.global_info = false);
    for n in 0..300 {
        sim.add_asset(&[("CoreField.Title", &format!("Asset {n}"))]);
    }
    let pages: Vec<_> = client(&sim)
        .search(all_assets(100))
        .try_collect()
        .await
        .expect("pages");
    let read: usize = pages.iter().map(|p| p.items.len()).sum();
    assert_eq!(read, 300);
    assert!(pages.iter().all(|p| p.total.is_none()));
    assert_eq!(
        sim.stats().searches,
        4,
        "three full pages, then an empty one"
    );
}

#[tokio::test]
async fn an_endless_next_page_stops_at_the_page_cap() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.ignore_page_number = true);
    for n in 0..150 {
        sim.add_asset(&[("CoreField.Title", &format!("Asset {n}"))]);
    }
    let client = client_with(&sim, |s| s.page_cap = 4);
    let mut pages = std::pin::pin!(client.search(all_assets(100)));
    let mut read = 0;
    let cut = loop {
        match pages.try_next().await {
            Ok(Some(page)) => read += page.items.len(),
            Ok(None) => panic!("an endless NextPage must not end by itself"),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(cut, OrangeLogicError::SearchCut { pages: 4, .. }),
        "{cut:?}"
    );
    assert_eq!(read, 400, "the pages already read were handed out");
    assert_eq!(sim.stats().searches, 4);
}

#[tokio::test]
async fn a_paged_read_renews_on_each_401_and_keeps_the_pages_read() {
    let sim = sim(SimConfig::default()).await;
    for n in 0..250 {
        sim.add_asset(&[("CoreField.Title", &format!("Asset {n}"))]);
    }
    let client = client(&sim);
    let mut pages = std::pin::pin!(client.search(all_assets(100)));
    let mut read = 0;
    while let Some(page) = pages.try_next().await.expect("every page") {
        read += page.items.len();
        sim.expire_tokens();
    }
    assert_eq!(read, 250);
    assert_eq!(
        sim.stats().tokens_issued,
        3,
        "one token, then a renewal per lost session"
    );
}

#[tokio::test]
async fn a_get_refused_as_too_long_is_sent_again_as_a_post_form() {
    let sim = sim(SimConfig::default()).await;
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
    let updates = sim.stats();
    let updates = updates.calls_to(":update");
    assert!(
        updates.iter().all(|c| c.method == "POST"),
        "writes always go as POST: {updates:?}"
    );
}

#[tokio::test]
async fn updates_use_the_route_and_key_configured_for_the_subtype() {
    let sim = sim(SimConfig::default()).await;
    let plain = sim.add_asset(&[("CoreField.Title", "Plain")]);
    let package = sim.add_asset(&[
        ("CoreField.Title", "Package"),
        ("CoreField.DocSubType", "Campaign-Package"),
    ]);
    let config = shared::connector_config::ConnectorConfig::parse(include_str!(
        "../../local/connector.yaml"
    ))
    .expect("local configuration");
    let client = client_with(&sim, |s| *s = s.clone().with_dam(&config.dam));
    for id in [&plain, &package] {
        client
            .update_record(id, &[FieldUpdate::set("CoreField.Status", "Approved")])
            .await
            .expect("update");
        assert_eq!(
            sim.asset(id).expect("asset").fields["CoreField.Status"],
            "Approved"
        );
    }
    let stats = sim.stats();
    assert_eq!(
        stats
            .calls_to("documents.image.campaign-package:update")
            .len(),
        1
    );
    assert_eq!(stats.calls_to("documents.image.default:update").len(), 1);
    // A second write needs no second read: the route is remembered per cold start.
    client
        .update_record(&plain, &[FieldUpdate::set("CoreField.Title", "Again")])
        .await
        .expect("update");
    assert_eq!(sim.stats().calls_to(":read").len(), 2);
}

#[tokio::test]
async fn a_misspelt_field_is_a_permanent_configuration_error_naming_it() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let misspelt = client(&sim)
        .update_record(&id, &[FieldUpdate::set("Custom.Campain", "X")])
        .await
        .expect_err("ignored parameter");
    match &misspelt {
        OrangeLogicError::IgnoredParameters { names } => assert_eq!(names, &["Custom.Campain:"]),
        other => panic!("{other:?}"),
    }
    assert!(!misspelt.is_retryable());
}

/// Runs one SQS record through the real batch runner with `work` as its handler.
async fn through_the_queue(
    work: impl std::future::Future<Output = Result<(), OrangeLogicError>>,
) -> Vec<String> {
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.message_id = Some("m1".into());
    record.body = Some("{}".into());
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = vec![record];
    let work = std::sync::Mutex::new(Some(work));
    let queues = shared::testing::InMemoryRecordQueues::default();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let policy = shared::lambda::sqs_batch::BatchPolicy::default();
    let response =
        shared::lambda::sqs_batch::process_records(event, deadline, &policy, &queues, |_| {
            let work = work.lock().expect("lock").take();
            async move {
                match work {
                    Some(work) => work.await,
                    None => Ok(()),
                }
            }
        })
        .await;
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[tokio::test]
async fn an_update_answered_update_failed_inside_http_200_is_a_typed_failure_and_the_event_is_retried()
 {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let client = client(&sim);
    let err = client
        .update_record(&id, &[FieldUpdate::set("CoreField.Status", "Maybe")])
        .await
        .expect_err("a value outside the list");
    assert!(
        matches!(&err, OrangeLogicError::WriteFailed { code, failed: 1, details: 1, .. } if code == "UPDATE_FAILED"),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("Maybe"),
        "no value in the error text"
    );
    let failed = through_the_queue(async {
        client
            .update_record(&id, &[FieldUpdate::set("CoreField.Status", "Maybe")])
            .await
    })
    .await;
    assert_eq!(failed, ["m1"], "reported for redelivery, not acknowledged");
    assert_eq!(
        sim.asset(&id)
            .expect("asset")
            .fields
            .get("CoreField.Status"),
        None
    );
}

#[tokio::test]
async fn an_update_answered_record_not_found_inside_http_200_is_a_typed_failure_and_the_event_is_retried()
 {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Old")]);
    let client = client(&sim);
    client
        .update_record(&id, &[FieldUpdate::set("CoreField.Title", "Seen")])
        .await
        .expect("the route is learnt");
    assert!(sim.delete(&id));
    let failed = through_the_queue(async {
        let err = client
            .update_record(&id, &[FieldUpdate::set("CoreField.Title", "Lost?")])
            .await
            .expect_err("gone");
        assert!(matches!(err, OrangeLogicError::RecordNotFound), "{err:?}");
        Err(err)
    })
    .await;
    assert_eq!(failed, ["m1"]);
    assert_eq!(
        sim.stats().calls_to(":update").len(),
        2,
        "the DAM itself answered RECORD_NOT_FOUND to the second update"
    );
}

#[tokio::test]
async fn an_asset_moves_to_a_folder_and_comments_are_appended() {
    let sim = sim(SimConfig::default()).await;
    let folder = sim.add_folder_path("Projects/Bridge/Field");
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
            "2026-11-26 region EMEA:\nreceived | ok",
        )
        .await
        .expect("second line");
    let asset = sim.asset(&id).expect("asset");
    assert_eq!(asset.fields["CoreField.Parent-folder"], folder);
    assert_eq!(
        asset.fields["Custom.WhatsAppLog"],
        "2026-11-26 approver A: approved\n2026-11-26 region EMEA: received | ok"
    );
    let err = client
        .move_to_folder(&id, "NO-SUCH-FOLDER")
        .await
        .expect_err("unknown folder");
    assert!(
        matches!(&err, OrangeLogicError::WriteFailed { code, .. } if code == "UPDATE_FAILED"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_3000_character_comment_append_goes_as_a_post_and_lands_whole() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    let line: String = "region EMEA received the package; notes: "
        .chars()
        .cycle()
        .take(3000)
        .collect();
    client
        .append_to_field(&id, "Custom.WhatsAppLog", &line)
        .await
        .expect("append");
    assert_eq!(
        sim.asset(&id).expect("asset").fields["Custom.WhatsAppLog"],
        line
    );
    let stats = sim.stats();
    let updates = stats.calls_to(":update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].method, "POST");
    assert!(
        updates[0].url_len < 100,
        "the text is in the body: {:?}",
        updates[0]
    );
    assert!(
        stats.calls.iter().all(|c| c.url_len <= 260),
        "{:?}",
        stats.calls
    );
}

#[tokio::test]
async fn an_upload_routed_to_a_folder_path_lands_in_that_folders_record_id() {
    let sim = sim(SimConfig::default()).await;
    sim.add_folder_path("Projects/Other/Field");
    let field = sim.add_folder_path("Projects/Bridge/Field");
    let path = temp_file("routed.jpg", 10 * 1024);
    let client = client(&sim);
    let folder = client
        .folder_record_id("Projects/Bridge/Field")
        .await
        .expect("resolved");
    assert_eq!(folder, field);
    let uploaded = client
        .upload_new_media(
            &NewMedia {
                folder,
                file_name: "photo.jpg".into(),
                metadata: vec![("CoreField.ProjectTag".into(), "BRIDGE-7".into())],
                upload_mode: "ProcessInLine".into(),
            },
            || open_file(&path),
        )
        .await
        .expect("upload");
    let asset = sim
        .asset_by_identifier(&uploaded.identifier)
        .expect("created");
    assert_eq!(asset.fields["CoreField.Parent-folder"], field);
    let reads = sim.stats().calls_to("documents.folder.default:read").len();
    client
        .folder_record_id("Projects/Bridge/Field")
        .await
        .expect("cached");
    assert_eq!(
        sim.stats().calls_to("documents.folder.default:read").len(),
        reads,
        "cached per cold start"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_unknown_folder_is_a_configuration_error_naming_it() {
    let sim = sim(SimConfig::default()).await;
    sim.add_folder_path("Projects/Bridge");
    let err = client(&sim)
        .folder_record_id("Projects/Bridge/Field")
        .await
        .expect_err("unknown");
    match &err {
        OrangeLogicError::UnknownFolder { path } => assert_eq!(path, "Projects/Bridge/Field"),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Projects/Bridge/Field"));
    assert_eq!(sim.asset_count(), 0, "nothing uploaded anywhere");
}

#[tokio::test]
async fn missing_folders_are_created_when_the_configuration_allows() {
    let sim = sim(SimConfig::default()).await;
    let bridge = sim.add_folder_path("Projects/Bridge");
    let client = client_with(&sim, |s| s.folders.create_missing = true);
    let field = client
        .folder_record_id("Projects/Bridge/Field")
        .await
        .expect("created");
    let created = sim.folder_at("Projects/Bridge/Field").expect("in the DAM");
    assert_eq!(created.record_id, field);
    assert_eq!(created.parent.as_deref(), Some(bridge.as_str()));
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

#[tokio::test]
async fn the_current_version_of_an_asset_is_read() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let client = client(&sim);
    assert_eq!(
        client
            .current_version(&id, "CoreField.Version")
            .await
            .expect("read")
            .as_deref(),
        Some("1")
    );
    sim.new_version(&id, "bridge-v2.jpg").expect("new version");
    assert_eq!(
        client
            .current_version(&id, "CoreField.Version")
            .await
            .expect("read")
            .as_deref(),
        Some("2")
    );
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
    let folder = sim.add_folder_path("WhatsApp/Field/Unsorted");
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
    let upload = sim.stats();
    let upload = upload.calls_to("uploadnewmedia");
    assert!(
        upload[0].url_len < 80,
        "metadata travels in the body, not the URL: {:?}",
        upload[0]
    );
    eprintln!(
        "measured: streamed upload of {} MiB in {} ms",
        LARGE_UPLOAD_BYTES / (1024 * 1024),
        elapsed.as_millis()
    );
    let _ = std::fs::remove_file(&path);
}

/// Uploads a file of `bytes` with a token the simulator has expired, and checks it was stored
/// once, whole, after one renewal; returns the simulator for more checks.
async fn upload_after_token_expiry(file_name: &str, bytes: usize) -> Simulator {
    let sim = sim(SimConfig::default()).await;
    let folder = sim.add_folder_path("WhatsApp/Field/Unsorted");
    let path = temp_file(file_name, bytes);
    let client = client_with(&sim, quick_retries);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.expire_tokens();
    let uploaded = client
        .upload_new_media(
            &NewMedia {
                folder,
                file_name: file_name.into(),
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
    assert_eq!(sim.asset_count(), 1, "stored once");
    assert_eq!(sim.stats().tokens_issued, 2, "one renewal");
    let _ = std::fs::remove_file(&path);
    sim
}

#[tokio::test]
async fn an_upload_after_a_token_expiry_reopens_the_file_and_succeeds() {
    upload_after_token_expiry("photo.jpg", 300 * 1024).await;
}

/// The simulator refuses an upload before reading its body and closes the connection, as a server
/// without `Expect: 100-continue` support does; with 8 MiB still to send, the client sees a
/// broken connection where the refusal was (CI lost a 300 KiB upload this way, 135 times in 150).
#[tokio::test]
async fn a_large_upload_refused_unread_for_its_expired_token_is_sent_again_with_a_new_one() {
    let sim = upload_after_token_expiry("clip.mp4", 8 * 1024 * 1024).await;
    assert_eq!(sim.stats().calls_to("uploadnewmedia").len(), 2);
}

#[tokio::test]
async fn an_upload_refused_unread_by_an_overloaded_server_is_retried_then_goes_back_to_the_queue() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::Seconds(0));
    let folder = sim.add_folder_path("WhatsApp/Field/Unsorted");
    let path = temp_file("overloaded.mp4", 8 * 1024 * 1024);
    let client = client_with(&sim, quick_retries);
    let media = NewMedia {
        folder,
        file_name: "clip.mp4".into(),
        metadata: Vec::new(),
        upload_mode: "ProcessInLine".into(),
    };
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    // Two refusals, then the third attempt is read and stored.
    sim.fail_next(&[503, 503]);
    let uploaded = client
        .upload_new_media(&media, || open_file(&path))
        .await
        .expect("third attempt");
    assert!(sim.asset_by_identifier(&uploaded.identifier).is_some());
    assert_eq!(sim.stats().calls_to("uploadnewmedia").len(), 3);
    // Refusals outlasting the attempts: nothing stored, a retryable error for the queue.
    sim.fail_next_n(503, 3);
    let err = client
        .upload_new_media(&media, || open_file(&path))
        .await
        .expect_err("refused three times");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(sim.asset_count(), 1, "the refused upload stored nothing");
    assert_eq!(sim.stats().calls_to("uploadnewmedia").len(), 6);
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
    assert_eq!(sim.asset_count(), 0);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_while_streaming() {
    let sim = sim(SimConfig {
        max_upload_bytes: 1024 * 1024,
        ..SimConfig::default()
    })
    .await;
    let folder = sim.add_folder_path("WhatsApp/Field/Unsorted");
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
async fn throttling_and_server_errors_are_retried_within_the_call() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::Seconds(0));
    let client = client_with(&sim, quick_retries);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.fail_next(&[429, 503]);
    assert_eq!(
        client
            .read_record("RecordID", "X")
            .await
            .expect("third attempt"),
        None
    );
    sim.fail_next(&[500, 502]);
    assert_eq!(
        client.read_record("RecordID", "X").await.expect("third"),
        None
    );
    let stats = sim.stats();
    assert_eq!(
        (
            stats.statuses.get(&429),
            stats.statuses.get(&503),
            stats.statuses.get(&500)
        ),
        (Some(&1), Some(&1), Some(&1))
    );
}

#[tokio::test]
async fn throttling_and_outages_outlasting_the_attempts_go_back_to_the_queue() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::Seconds(0));
    let client = client_with(&sim, quick_retries);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.fail_next_n(429, 3);
    let throttled = client.read_record("RecordID", "X").await.expect_err("429");
    assert!(
        matches!(
            throttled,
            OrangeLogicError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{throttled:?}"
    );
    sim.fail_next_n(503, 3);
    let unavailable = client.read_record("RecordID", "X").await.expect_err("503");
    assert!(matches!(
        unavailable,
        OrangeLogicError::Server { status: 503, .. }
    ));
    assert!(throttled.is_retryable() && unavailable.is_retryable());
    assert_eq!(
        client.read_record("RecordID", "X").await.expect("back"),
        None
    );
}

#[tokio::test]
async fn a_429_with_retry_after_as_an_http_date_is_retried_after_that_time_within_the_budget() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::HttpDate(2));
    let client = client(&sim);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.fail_next(&[429]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let found = shared::lambda::deadline::scope(deadline, client.read_record("RecordID", "X"))
        .await
        .expect("retried");
    assert_eq!(found, None);
    let stats = sim.stats();
    let asked = *stats.retry_after_dates.last().expect("a date was sent");
    let calls = stats.calls_to(":read");
    let retry = calls.last().expect("the retry");
    assert!(
        retry.at >= asked,
        "the retry came at {:?}, before the {:?} the DAM named",
        retry.at,
        asked
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_remaining_time_hands_the_work_back_at_once() {
    let sim = sim(SimConfig::default()).await;
    sim.set_behaviour(|b| b.retry_after = RetryAfterStyle::HttpDate(20));
    let client = client(&sim);
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.fail_next(&[429]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let err = shared::lambda::deadline::scope(deadline, client.read_record("RecordID", "X"))
        .await
        .expect_err("does not fit");
    assert!(matches!(err, OrangeLogicError::OutOfTime(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        sim.stats().calls_to(":read").len(),
        2,
        "the warm-up and the throttled call; no retry that could not finish in time"
    );
}

#[tokio::test]
async fn a_call_never_answered_times_out_as_a_retryable_transport_error() {
    let sim = sim(SimConfig::default()).await;
    let client = client_with(&sim, |s| {
        s.timeout = Duration::from_millis(300);
        s.retry.max_attempts = 1;
    });
    client
        .read_record("RecordID", "warm-up")
        .await
        .expect("token");
    sim.hang_next(1);
    let err = client
        .read_record("RecordID", "X")
        .await
        .expect_err("timeout");
    assert!(matches!(err, OrangeLogicError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn no_url_query_string_or_value_reaches_an_error_or_a_log_line() {
    let sim = sim(SimConfig::default()).await;
    let id = sim.add_asset(&[("CoreField.Title", "Bridge")]);
    let logs = Logs::default();
    let secret_value = "caption-with-phone-15551234567";
    let mut errors = Vec::new();
    async {
        // Nobody listens there: a connection error, whose reqwest text would carry the URL.
        let nowhere = OrangeLogicClient::new(Settings::new(
            "http://127.0.0.1:9",
            Auth::StaticBearer(Secret::new("t")),
        ))
        .expect("client");
        errors.push(
            nowhere
                .read_record("RecordID", secret_value)
                .await
                .expect_err("refused"),
        );
        let slow = client_with(&sim, |s| {
            s.timeout = Duration::from_millis(200);
            s.retry.max_attempts = 1;
        });
        slow.read_record("RecordID", "warm-up")
            .await
            .expect("token");
        sim.hang_next(1);
        errors.push(
            slow.read_record("RecordID", secret_value)
                .await
                .expect_err("timeout"),
        );
        let client = client(&sim);
        errors.push(
            client
                .update_record(&id, &[FieldUpdate::set("CoreField.Status", secret_value)])
                .await
                .expect_err("value not allowed"),
        );
        client
            .append_to_field(&id, "Custom.WhatsAppLog", secret_value)
            .await
            .expect("comment");
        let long = client_with(&sim, |s| s.max_get_url_len = 100_000);
        let _ = long
            .search(SearchQuery {
                query: format!("CoreField.Title:{secret_value} {}", "x ".repeat(200)),
                fields: vec!["RecordID".into()],
                per_page: 10,
                sort: None,
            })
            .try_collect::<Vec<_>>()
            .await;
    }
    .with_subscriber(logs.subscriber())
    .await;
    let texts: Vec<String> = errors
        .iter()
        .map(|e| shared::error::chain(e))
        .chain([logs.text()])
        .collect();
    for text in &texts {
        for forbidden in [
            "http://",
            "127.0.0.1",
            "RecordID=",
            secret_value,
            "15551234567",
        ] {
            assert!(!text.contains(forbidden), "{forbidden:?} in {text}");
        }
    }
    assert!(errors.iter().all(|e| e.is_retryable()), "{errors:?}");
}

#[tokio::test]
async fn a_hundred_thousand_generated_assets_can_be_scanned() {
    let sim = sim(SimConfig::default()).await;
    let started = Instant::now();
    sim.generate(100_000, 7);
    let generated = started.elapsed();
    assert_eq!(sim.asset_count(), 100_000);
    let client = client_with(&sim, |s| s.page_cap = 1_000);
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

/// A subscriber answering 200; records the event ids it saw.
async fn subscriber() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let record = Arc::clone(&record);
            async move {
                let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                record.lock().unwrap_or_else(|e| e.into_inner()).push(
                    event["events"][0]["eventId"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
                axum::http::StatusCode::OK
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
async fn muted_writes_do_not_come_back_as_webhooks() {
    let sim = sim(SimConfig::default()).await;
    let (url, seen) = subscriber().await;
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
