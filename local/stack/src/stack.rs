//! The whole local stack on one moto: resources from template.yaml, every function connected with
//! the environment the template gives it, the HTTP front and the queue runner.

use crate::front::{self, Route};
use crate::functions::{self, Scheduled, SqsFn};
use crate::malware_scan::MalwareScanner;
use crate::moto::workspace_root;
use crate::provision::{Resources, provision};
use crate::runner::{Consumer, DEFAULT_POLLERS, QueueRunner};
use crate::template::Template;
use anyhow::Context;
use aws_config::SdkConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of every physical name; one moto can hold many stacks.
    pub stack_name: String,
    /// Address of the HTTP front (`127.0.0.1:0` picks a port).
    pub front_addr: SocketAddr,
    /// The secrets document the functions load.
    pub secrets_file: PathBuf,
    /// Poll queues in the background (the demo); tests drive the runner themselves.
    pub run_queues: bool,
    /// Base URL of the Orange Logic instance (the simulator's); `None`: nothing listens there.
    pub orange_logic_url: Option<String>,
    /// Base URL of the Graph API the sender talks to (the WhatsApp simulator's); `None`: nothing
    /// listens there.
    pub graph_base_url: Option<String>,
    /// Variables set on every function over what the template gives (a test's small pacing
    /// values, a short Graph timeout).
    pub env_overrides: BTreeMap<String, String>,
}

impl Options {
    /// Defaults for `stack_name`: random front port, the committed local secrets, no background polling.
    pub fn new(stack_name: impl Into<String>) -> Self {
        Self {
            stack_name: stack_name.into(),
            front_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            secrets_file: workspace_root().join("local/secrets.json"),
            run_queues: false,
            orange_logic_url: None,
            graph_base_url: None,
            env_overrides: BTreeMap::new(),
        }
    }
}

/// A running local stack.
#[derive(Debug)]
pub struct LocalStack {
    /// SDK configuration pointing at moto.
    pub aws: SdkConfig,
    /// The template as read.
    pub template: Template,
    /// Physical resources.
    pub resources: Resources,
    /// Where the HTTP front listens.
    pub front: SocketAddr,
    /// The queue runner.
    pub runner: Arc<QueueRunner>,
    /// GuardDuty's part: tags what lands in the staging bucket.
    pub malware_scanner: Option<Arc<MalwareScanner>>,
    consumers: Vec<Consumer>,
    schedules: Vec<Scheduled>,
    invokers: BTreeMap<String, Invoker>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    authorizer: crate::jwt::Authorizer,
}

/// A started function and its timeout, invoked by hand.
struct Invoker(functions::InvokeFn, Duration);

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Invoker(timeout {:?})", self.1)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl LocalStack {
    /// Provisions and starts everything against the moto at `moto_endpoint`.
    pub async fn start(moto_endpoint: &str, options: Options) -> anyhow::Result<Self> {
        let aws = shared::aws::local(moto_endpoint).await;
        let template = Template::load(&workspace_root().join("template.yaml"))?;
        let mut resources = provision(&aws, &template, &options.stack_name).await?;
        // Parameters the local stack gives the template: secrets come from a file, not Secrets Manager.
        resources
            .parameters
            .insert("ConnectorSecretsArn".into(), String::new());
        resources
            .parameters
            .insert("LogLevel".into(), "info".into());
        // Port 9 (discard) when no simulator runs: functions connect, calls fail as unreachable.
        resources.parameters.insert(
            "OrangeLogicBaseUrl".into(),
            options
                .orange_logic_url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:9".into()),
        );
        resources
            .parameters
            .insert("OrangeLogicAuth".into(), "client_credentials".into());
        resources.parameters.insert(
            "WhatsAppGraphBaseUrl".into(),
            options
                .graph_base_url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:9".into()),
        );
        resources
            .parameters
            .insert("SendRatePerSecond".into(), "80".into());
        // The local stack plays GuardDuty Malware Protection for S3 (`malware_scan`).
        resources
            .parameters
            .insert("MalwareScanning".into(), "enabled".into());
        resources
            .parameters
            .insert("MalwareScanWaitSeconds".into(), "10".into());
        resources
            .parameters
            .insert("FieldReceiptWindowSeconds".into(), "2".into());
        resources
            .parameters
            .insert("OrangeLogicClientId".into(), "connector-local".into());

        let authorizer = crate::jwt::Authorizer::new();
        resources
            .parameters
            .insert("OperatorJwtIssuer".into(), crate::jwt::LOCAL_ISSUER.into());
        resources.parameters.insert(
            "OperatorJwtAudience".into(),
            crate::jwt::LOCAL_AUDIENCE.into(),
        );
        let mut routes = Vec::new();
        let mut consumers = Vec::new();
        let mut schedules = Vec::new();
        let mut invokers = BTreeMap::new();
        for function in &template.functions {
            let mut vars: BTreeMap<String, String> = function
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), resources.resolve(v)))
                .collect();
            vars.insert(
                "CONNECTOR_SECRETS_FILE".into(),
                options.secrets_file.display().to_string(),
            );
            vars.insert(
                "CONNECTOR_CONFIG_FILE".into(),
                workspace_root()
                    .join("local/connector.yaml")
                    .display()
                    .to_string(),
            );
            vars.extend(options.env_overrides.clone());
            let invoke = functions::start(&function.binary, vars.clone(), &aws)
                .await
                .with_context(|| format!("starting {}", function.logical_id))?;
            let timeout = Duration::from_secs(function.timeout_seconds);
            invokers.insert(
                function.logical_id.clone(),
                Invoker(Arc::clone(&invoke), timeout),
            );
            for (method, path) in &function.http_events {
                let handler = functions::http(Arc::clone(&invoke), timeout);
                let guarded = function
                    .jwt_events
                    .iter()
                    .any(|(m, p)| m == method && p == path);
                routes.push(Route {
                    method: method.clone(),
                    path: path.clone(),
                    handler: if guarded {
                        authorizer.guard(handler)
                    } else {
                        handler
                    },
                });
            }
            for trigger in &function.sqs_events {
                let mut consumer = consumer(
                    &resources,
                    &trigger.queue,
                    trigger.batch_size,
                    functions::sqs(Arc::clone(&invoke), timeout),
                )?;
                consumer.report_batch_item_failures = trigger.report_batch_item_failures;
                // Each further poller gets an instance of its own, as each concurrent Lambda
                // invocation runs in an execution environment of its own.
                let pollers = trigger.maximum_concurrency.unwrap_or(DEFAULT_POLLERS);
                for _ in 1..pollers {
                    let instance = functions::start(&function.binary, vars.clone(), &aws)
                        .await
                        .with_context(|| format!("starting {}", function.logical_id))?;
                    consumer.instances.push(functions::sqs(instance, timeout));
                }
                consumers.push(consumer);
            }
            for scheduled in &function.schedules {
                let input = serde_json::from_str(&scheduled.input).with_context(|| {
                    format!(
                        "{}: the Input of schedule {} is not JSON",
                        function.logical_id, scheduled.name
                    )
                })?;
                schedules.push(Scheduled {
                    function: function.logical_id.clone(),
                    handler: functions::schedule(Arc::clone(&invoke), input, timeout),
                });
            }
        }
        let (front, front_task) = front::serve(options.front_addr, routes).await?;
        let malware_scanner = resources
            .buckets
            .get("MediaStagingBucket")
            .map(|bucket| MalwareScanner::new(&aws, bucket));
        let runner = Arc::new(QueueRunner::new(aws_sdk_sqs::Client::new(&aws)));
        let mut tasks = vec![front_task];
        if let Some(scanner) = &malware_scanner {
            tasks.push(scanner.spawn(Duration::from_millis(250)));
        }
        if options.run_queues {
            tasks.extend(Arc::clone(&runner).spawn(consumers.clone()));
        }
        Ok(Self {
            aws,
            template,
            resources,
            front,
            runner,
            malware_scanner,
            consumers,
            schedules,
            invokers,
            tasks,
            authorizer,
        })
    }

    /// A bearer token the operator API's authorizer accepts, naming the rep with WhatsApp
    /// number `phone` (the `phone_number` claim share-approved-asset reads).
    pub fn operator_token(&self, phone: &str) -> String {
        self.authorizer
            .mint(&format!("rep:{phone}"), &[("phone_number", phone)])
    }

    /// Fires the schedule of the function `logical_id`, as EventBridge Scheduler would; returns its answer.
    pub async fn fire_schedule(&self, logical_id: &str) -> anyhow::Result<serde_json::Value> {
        let scheduled = self
            .schedules
            .iter()
            .find(|s| s.function == logical_id)
            .with_context(|| format!("no scheduled function {logical_id}"))?;
        (scheduled.handler)().await
    }

    /// Invokes the function `logical_id` with `payload`, as `aws lambda invoke` would (a schedule
    /// fired with another input, a hand-made event); returns its answer.
    pub async fn invoke(
        &self,
        logical_id: &str,
        payload: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let Invoker(invoke, timeout) = self
            .invokers
            .get(logical_id)
            .with_context(|| format!("no function {logical_id}"))?;
        invoke(payload, tokio::time::Instant::now() + *timeout).await
    }

    /// `http://127.0.0.1:PORT` + `path` on the HTTP front.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.front)
    }

    /// The consumer the template wires to `queue` (logical id).
    pub fn consumer(&self, queue: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.queue == queue)
    }

    /// A consumer of `queue` running `handler`, for exercising the runner with a function of the test's own.
    pub fn consumer_with(
        &self,
        queue: &str,
        batch_size: u16,
        handler: SqsFn,
    ) -> anyhow::Result<Consumer> {
        consumer(&self.resources, queue, batch_size, handler)
    }

    /// An SQS client on this stack's moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }
}

fn consumer(
    resources: &Resources,
    queue: &str,
    batch_size: u16,
    handler: SqsFn,
) -> anyhow::Result<Consumer> {
    Ok(Consumer {
        queue: queue.to_owned(),
        url: resources.queue_url(queue)?.to_owned(),
        arn: resources.queue_arns.get(queue).cloned().unwrap_or_default(),
        batch_size,
        report_batch_item_failures: true,
        instances: vec![Arc::clone(&handler)],
        handler,
    })
}
