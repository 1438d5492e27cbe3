//! `local/sam-env.json`, the `--env-vars` file of `sam local invoke --config-env local`: it names
//! every function of template.yaml with every variable the template gives it, resolved for the
//! local stack `local` as a container reaches it (moto and the simulators on
//! `host.docker.internal`, the secrets and configuration in moto). With no container runtime here,
//! each function is then started in-process from exactly those variables (the hosts pointed at this
//! test's moto and simulators) and handles every file of its `events/` folder, as
//! `sam local invoke <Function> -e events/<function>/<case>.json` would make it.
//!
//! `UPDATE_SAM_ENV=1 cargo test --test e2e sam_local` rewrites the file after a template change.

use e2e::TestEnv;
use std::collections::BTreeMap;
use std::time::Duration;

const MOTO: &str = "http://host.docker.internal:4566";
const DAM: &str = "http://host.docker.internal:4020";
const GRAPH: &str = "http://host.docker.internal:4010";

type EnvFile = BTreeMap<String, BTreeMap<String, String>>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

#[tokio::test]
async fn the_sam_env_file_starts_every_function_and_each_handles_its_event_files() {
    let dam = orange_logic_sim::Simulator::start(
        orange_logic_sim::SimConfig::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("DAM simulator");
    let graph_port = free_port();
    let graph_url = format!("http://127.0.0.1:{graph_port}");
    // A moto of its own: the stack is named `local`, as the env file says.
    let env = TestEnv::start_alone(|o| {
        o.stack_name = "local".into();
        o.orange_logic_url = Some(dam.url());
        o.graph_base_url = Some(graph_url.clone());
    })
    .await;
    let mut wa = whatsapp_sim::SimConfig::new("local-graph-token", e2e::APP_SECRET);
    wa.addr = std::net::SocketAddr::from(([127, 0, 0, 1], graph_port));
    let _graph = whatsapp_sim::Simulator::start(wa).await.expect("simulator");
    let moto = env
        .stack
        .aws
        .endpoint_url()
        .expect("the stack's moto endpoint")
        .trim_end_matches('/')
        .to_owned();
    let to_container = |value: &str| {
        value
            .replace(&moto, MOTO)
            .replace(&dam.url(), DAM)
            .replace(&graph_url, GRAPH)
    };

    // What the file must say, from the template as the local stack resolves it.
    let mut expected = EnvFile::new();
    for function in &env.stack.template.functions {
        let mut vars: BTreeMap<String, String> = function
            .environment
            .iter()
            // RUST_LOG stays as the template sets it.
            .filter(|(name, _)| name.as_str() != "RUST_LOG")
            .map(|(name, value)| {
                (
                    name.clone(),
                    to_container(&env.stack.resources.resolve(value)),
                )
            })
            .collect();
        vars.insert(
            "CONNECTOR_SECRETS_ARN".into(),
            local::sam_local::secret_name("local"),
        );
        if vars.contains_key("CONNECTOR_CONFIG_PARAMETER") {
            vars.insert(
                "CONNECTOR_CONFIG_PARAMETER".into(),
                local::sam_local::config_parameter("local"),
            );
        }
        vars.insert("AWS_ENDPOINT_URL".into(), MOTO.into());
        expected.insert(function.logical_id.clone(), vars);
    }
    let path = local::moto::workspace_root().join("local/sam-env.json");
    if std::env::var_os("UPDATE_SAM_ENV").is_some() {
        let text = serde_json::to_string_pretty(&expected).expect("json") + "\n";
        std::fs::write(&path, text).expect("local/sam-env.json written");
    }
    let file: EnvFile = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("local/sam-env.json: {e}")),
    )
    .expect("local/sam-env.json is a map of functions to variables");
    assert_eq!(
        file, expected,
        "local/sam-env.json is out of date: run UPDATE_SAM_ENV=1 cargo test --test e2e sam_local"
    );

    // Started from the file (the container's hosts pointed back here), each function handles
    // every event file of its folder.
    local::sam_local::seed(&env.stack.aws, "local")
        .await
        .expect("secrets and configuration in moto");
    let from_container = |value: &str| {
        value
            .replace(MOTO, &moto)
            .replace(DAM, &dam.url())
            .replace(GRAPH, &graph_url)
    };
    let mut handled = 0;
    for function in &env.stack.template.functions {
        let vars: BTreeMap<String, String> = file[&function.logical_id]
            .iter()
            .map(|(k, v)| (k.clone(), from_container(v)))
            .collect();
        let invoke = local::functions::start(&function.binary, vars, &env.stack.aws)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} does not start from sam-env.json: {e:#}",
                    function.logical_id
                )
            });
        let folder = local::moto::workspace_root()
            .join("events")
            .join(&function.binary);
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no events", function.binary);
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let payload: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("event file"))
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(function.timeout_seconds);
            let answer = invoke(payload, deadline)
                .await
                .unwrap_or_else(|e| panic!("{} with {name}: {e:#}", function.binary));
            if let Some(status) = answer.get("statusCode").and_then(serde_json::Value::as_u64) {
                // An HTTP API function: the bad cases are refused, the others accepted.
                if name.starts_with("bad-") || name.contains("bad-token") {
                    assert!(
                        (400..500).contains(&status),
                        "{} {name}: {status}",
                        function.binary
                    );
                } else {
                    assert!(status < 400, "{} {name}: {status}", function.binary);
                }
            }
            handled += 1;
        }
    }
    assert!(handled >= 25, "every events/ file was invoked ({handled})");
}
