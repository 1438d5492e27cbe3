//! Reads `template.yaml`, so the local stack creates exactly the tables, queues, buckets and event
//! wiring that `sam deploy` would.

use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A template value that refers to another resource or a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A plain string.
    Literal(String),
    /// `!Ref X`.
    Ref(String),
    /// `!GetAtt X.Attr`.
    GetAtt(String, String),
    /// `!Sub "..."`, with `${AWS::StackName}` and `${X}` / `${X.Attr}` placeholders.
    Sub(String),
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone)]
pub struct QueueDef {
    /// Logical id in the template.
    pub logical_id: String,
    /// `QueueName` (usually a `!Sub` on the stack name).
    pub name: Reference,
    /// `FifoQueue`.
    pub fifo: bool,
    /// `ContentBasedDeduplication`.
    pub content_based_deduplication: bool,
    /// `VisibilityTimeout` seconds.
    pub visibility_timeout: Option<u64>,
    /// Dead-letter queue logical id and `maxReceiveCount`.
    pub redrive: Option<(String, u64)>,
}

/// An `AWS::DynamoDB::Table`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Logical id.
    pub logical_id: String,
    /// `TableName`.
    pub name: Reference,
    /// `(AttributeName, AttributeType)`.
    pub attributes: Vec<(String, String)>,
    /// `(AttributeName, KeyType)`.
    pub key_schema: Vec<(String, String)>,
    /// Global secondary indexes: name and key schema (projection ALL).
    pub global_indexes: Vec<(String, Vec<(String, String)>)>,
    /// TTL attribute, when enabled.
    pub ttl_attribute: Option<String>,
}

/// An `AWS::S3::Bucket`.
#[derive(Debug, Clone)]
pub struct BucketDef {
    /// Logical id.
    pub logical_id: String,
    /// `BucketName`.
    pub name: Reference,
}

/// An `AWS::Serverless::Function` and its triggers.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Logical id.
    pub logical_id: String,
    /// The binary (= package = folder).
    pub binary: String,
    /// Environment variables (Globals merged with the function's own).
    pub environment: BTreeMap<String, Reference>,
    /// SQS triggers.
    pub sqs_events: Vec<SqsTrigger>,
    /// HTTP API triggers: method and path.
    pub http_events: Vec<(String, String)>,
    /// The HTTP API triggers whose API authorizes with a JWT by default (API Gateway answers 401
    /// without a valid token and never invokes the function): method and path.
    pub jwt_events: Vec<(String, String)>,
    /// Schedules.
    pub schedules: Vec<ScheduleDef>,
    /// `Timeout` seconds (the function's, else Globals', else Lambda's default of 3).
    pub timeout_seconds: u64,
    /// `MemorySize` MB (the function's, else Globals', else Lambda's default of 128).
    pub memory_mb: u64,
}

/// A `Schedule` / `ScheduleV2` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDef {
    /// The event's name.
    pub name: String,
    /// `ScheduleExpression`.
    pub expression: String,
    /// `Input`: the JSON the function receives (`{}` when absent).
    pub input: String,
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsTrigger {
    /// Logical id of the queue.
    pub queue: String,
    /// `BatchSize`.
    pub batch_size: u16,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`; without it Lambda ignores
    /// `batchItemFailures` and deletes the whole batch when the function returns.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: at most this many batches in flight at once.
    pub maximum_concurrency: Option<u16>,
}

/// Everything the local stack needs from the template.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// Queues.
    pub queues: Vec<QueueDef>,
    /// Tables.
    pub tables: Vec<TableDef>,
    /// Buckets.
    pub buckets: Vec<BucketDef>,
    /// Functions.
    pub functions: Vec<FunctionDef>,
}

/// The template could not be read or has a shape this reader does not know.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Unreadable file.
    #[error("cannot read {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("template.yaml is not valid YAML")]
    Yaml(#[from] serde_norway::Error),
    /// A resource lacks what the local stack needs.
    #[error("template.yaml: {resource}: {problem}")]
    Shape { resource: String, problem: String },
}

impl Template {
    /// Reads and interprets a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Interprets template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut root: Value = serde_norway::from_str(text)?;
        if let Some(resources) = root.get_mut("Resources") {
            expand_for_each(resources)?;
        }
        let globals = root.get("Globals").and_then(|g| g.get("Function"));
        let global_env = env_of(globals);
        let global_number = |key: &str| globals.and_then(|g| g.get(key)).and_then(as_u64);
        let mut template = Template::default();
        let Some(resources) = root.get("Resources").and_then(Value::as_mapping) else {
            return Ok(template);
        };
        let jwt_apis = jwt_apis(resources);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let props = resource.get("Properties");
            let shape = |problem: &str| TemplateError::Shape {
                resource: id.clone(),
                problem: problem.to_owned(),
            };
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::SQS::Queue") => {
                    let props = props.ok_or_else(|| shape("has no Properties"))?;
                    let name = props
                        .get("QueueName")
                        .map(reference)
                        .ok_or_else(|| shape("needs a QueueName"))?;
                    let redrive = props.get("RedrivePolicy").map(|policy| {
                        let dlq = match policy.get("deadLetterTargetArn").map(reference) {
                            Some(Reference::GetAtt(dlq, _)) => Ok(dlq),
                            _ => Err(shape(
                                "RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn",
                            )),
                        }?;
                        let max = policy.get("maxReceiveCount").and_then(as_u64).unwrap_or(5);
                        Ok::<_, TemplateError>((dlq, max))
                    });
                    template.queues.push(QueueDef {
                        logical_id: id.clone(),
                        name,
                        fifo: props
                            .get("FifoQueue")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        content_based_deduplication: props
                            .get("ContentBasedDeduplication")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        visibility_timeout: props.get("VisibilityTimeout").and_then(as_u64),
                        redrive: redrive.transpose()?,
                    });
                }
                Some("AWS::DynamoDB::Table") => {
                    let props = props.ok_or_else(|| shape("has no Properties"))?;
                    let pairs = |v: Option<&Value>, a: &str, b: &str| -> Vec<(String, String)> {
                        v.and_then(Value::as_sequence)
                            .map(|seq| {
                                seq.iter()
                                    .map(|e| (str_of(e.get(a)), str_of(e.get(b))))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    let global_indexes = props
                        .get("GlobalSecondaryIndexes")
                        .and_then(Value::as_sequence)
                        .map(|seq| {
                            seq.iter()
                                .map(|gsi| {
                                    (
                                        str_of(gsi.get("IndexName")),
                                        pairs(gsi.get("KeySchema"), "AttributeName", "KeyType"),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let ttl = props.get("TimeToLiveSpecification");
                    template.tables.push(TableDef {
                        logical_id: id.clone(),
                        name: props
                            .get("TableName")
                            .map(reference)
                            .ok_or_else(|| shape("needs a TableName"))?,
                        attributes: pairs(
                            props.get("AttributeDefinitions"),
                            "AttributeName",
                            "AttributeType",
                        ),
                        key_schema: pairs(props.get("KeySchema"), "AttributeName", "KeyType"),
                        global_indexes,
                        ttl_attribute: ttl
                            .filter(|t| t.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
                            .map(|t| str_of(t.get("AttributeName"))),
                    });
                }
                Some("AWS::S3::Bucket") => {
                    let name = props
                        .and_then(|p| p.get("BucketName"))
                        .map(reference)
                        .ok_or_else(|| shape("needs a BucketName"))?;
                    template.buckets.push(BucketDef {
                        logical_id: id.clone(),
                        name,
                    });
                }
                Some("AWS::Serverless::Function") => {
                    let binary = resource
                        .get("Metadata")
                        .and_then(|m| m.get("BuildProperties"))
                        .and_then(|b| b.get("Binary"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| shape("needs Metadata.BuildProperties.Binary"))?
                        .to_owned();
                    let mut environment = global_env.clone();
                    environment.extend(env_of(props));
                    let mut function = FunctionDef {
                        logical_id: id.clone(),
                        binary,
                        environment,
                        sqs_events: Vec::new(),
                        http_events: Vec::new(),
                        jwt_events: Vec::new(),
                        schedules: Vec::new(),
                        timeout_seconds: props
                            .and_then(|p| p.get("Timeout"))
                            .and_then(as_u64)
                            .or_else(|| global_number("Timeout"))
                            .unwrap_or(3),
                        memory_mb: props
                            .and_then(|p| p.get("MemorySize"))
                            .and_then(as_u64)
                            .or_else(|| global_number("MemorySize"))
                            .unwrap_or(128),
                    };
                    let events = props
                        .and_then(|p| p.get("Events"))
                        .and_then(Value::as_mapping);
                    for (name, event) in events.into_iter().flatten() {
                        let ep = event.get("Properties");
                        let field = |k: &str| ep.and_then(|p| p.get(k));
                        match event.get("Type").and_then(Value::as_str) {
                            Some("SQS") => match field("Queue").map(reference) {
                                Some(Reference::GetAtt(queue, _)) => {
                                    let batch = field("BatchSize").and_then(as_u64).unwrap_or(10);
                                    let report = field("FunctionResponseTypes")
                                        .and_then(Value::as_sequence)
                                        .is_some_and(|types| {
                                            types.iter().any(|t| {
                                                t.as_str() == Some("ReportBatchItemFailures")
                                            })
                                        });
                                    let maximum_concurrency = field("ScalingConfig")
                                        .and_then(|c| c.get("MaximumConcurrency"))
                                        .and_then(as_u64)
                                        .and_then(|n| u16::try_from(n).ok());
                                    function.sqs_events.push(SqsTrigger {
                                        queue,
                                        batch_size: u16::try_from(batch).unwrap_or(10),
                                        report_batch_item_failures: report,
                                        maximum_concurrency,
                                    });
                                }
                                _ => {
                                    return Err(shape(
                                        "an SQS event's Queue must be !GetAtt <Queue>.Arn",
                                    ));
                                }
                            },
                            Some("HttpApi") => {
                                let route = (
                                    str_of(field("Method")).to_uppercase(),
                                    str_of(field("Path")),
                                );
                                // `Auth: { Authorizer: NONE }` opens one route of a JWT API.
                                let open = field("Auth")
                                    .and_then(|a| a.get("Authorizer"))
                                    .and_then(|a| a.as_str())
                                    == Some("NONE");
                                if !open
                                    && matches!(field("ApiId").map(reference),
                                    Some(Reference::Ref(api)) if jwt_apis.contains(&api))
                                {
                                    function.jwt_events.push(route.clone());
                                }
                                function.http_events.push(route);
                            }
                            Some("ScheduleV2" | "Schedule") => {
                                function.schedules.push(ScheduleDef {
                                    name: name.as_str().unwrap_or_default().to_owned(),
                                    expression: str_of(field("ScheduleExpression")),
                                    input: field("Input")
                                        .map(|i| str_of(Some(i)))
                                        .filter(|i| !i.is_empty())
                                        .unwrap_or_else(|| "{}".into()),
                                });
                            }
                            _ => {}
                        }
                    }
                    template.functions.push(function);
                }
                _ => {}
            }
        }
        Ok(template)
    }

    /// The function consuming a queue, if any.
    pub fn consumer_of(&self, queue_logical_id: &str) -> Option<&FunctionDef> {
        self.functions
            .iter()
            .find(|f| f.sqs_events.iter().any(|t| t.queue == queue_logical_id))
    }
}

/// The `AWS::Serverless::HttpApi` resources whose `Auth.DefaultAuthorizer` is a JWT authorizer.
fn jwt_apis(resources: &serde_norway::Mapping) -> std::collections::BTreeSet<String> {
    resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi"))
        .filter(|(_, r)| {
            let auth = r.get("Properties").and_then(|p| p.get("Auth"));
            let default = auth
                .and_then(|a| a.get("DefaultAuthorizer"))
                .and_then(Value::as_str);
            default.is_some_and(|name| {
                auth.and_then(|a| a.get("Authorizers"))
                    .and_then(|a| a.get(name))
                    .and_then(|a| a.get("JwtConfiguration"))
                    .is_some()
            })
        })
        .filter_map(|(id, _)| id.as_str().map(str::to_owned))
        .collect()
}

/// Expands `Fn::ForEach::<Loop>: [Identifier, [values], {resources}]` (the
/// `AWS::LanguageExtensions` transform) in place: each value is substituted for `${Identifier}`
/// and `&{Identifier}` in keys and strings, and for `!Ref Identifier`.
fn expand_for_each(resources: &mut Value) -> Result<(), TemplateError> {
    let Some(map) = resources.as_mapping_mut() else {
        return Ok(());
    };
    let loops: Vec<Value> = map
        .keys()
        .filter(|k| k.as_str().is_some_and(|k| k.starts_with("Fn::ForEach::")))
        .cloned()
        .collect();
    for key in loops {
        let name = key.as_str().unwrap_or_default().to_owned();
        let shape = |problem: &str| TemplateError::Shape {
            resource: name.clone(),
            problem: problem.to_owned(),
        };
        let body = map.remove(&key).unwrap_or(Value::Null);
        let parts = body
            .as_sequence()
            .filter(|p| p.len() == 3)
            .ok_or_else(|| shape("must be [Identifier, [values], {resources}]"))?;
        let identifier = parts[0]
            .as_str()
            .ok_or_else(|| shape("the identifier must be a string"))?;
        let values = parts[1]
            .as_sequence()
            .ok_or_else(|| shape("the values must be a list"))?;
        let fragment = parts[2]
            .as_mapping()
            .ok_or_else(|| shape("the resources must be a mapping"))?;
        for value in values {
            let value = value
                .as_str()
                .ok_or_else(|| shape("each value must be a string"))?;
            for (id, resource) in fragment {
                let id = substitute(id, identifier, value);
                let resource = substitute(resource, identifier, value);
                if map.insert(id.clone(), resource).is_some() {
                    return Err(shape(&format!(
                        "expands to {} twice",
                        id.as_str().unwrap_or_default()
                    )));
                }
            }
        }
    }
    Ok(())
}

fn substitute(value: &Value, identifier: &str, with: &str) -> Value {
    match value {
        Value::String(s) => Value::String(
            s.replace(&format!("${{{identifier}}}"), with)
                .replace(&format!("&{{{identifier}}}"), with),
        ),
        Value::Sequence(seq) => Value::Sequence(
            seq.iter()
                .map(|v| substitute(v, identifier, with))
                .collect(),
        ),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| {
                    (
                        substitute(k, identifier, with),
                        substitute(v, identifier, with),
                    )
                })
                .collect(),
        ),
        Value::Tagged(tagged)
            if tagged.tag == "Ref" && tagged.value.as_str() == Some(identifier) =>
        {
            Value::String(with.to_owned())
        }
        Value::Tagged(tagged) => {
            let value = substitute(&tagged.value, identifier, with);
            match value.as_str() {
                // `!Sub "ReviewDLQ"` once substituted is the plain name (e.g. inside `!GetAtt`).
                Some(text) if tagged.tag == "Sub" && !text.contains("${") => value,
                _ => Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                    tag: tagged.tag.clone(),
                    value,
                })),
            }
        }
        other => other.clone(),
    }
}

fn env_of(section: Option<&Value>) -> BTreeMap<String, Reference> {
    section
        .and_then(|s| s.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .map(|vars| {
            vars.iter()
                // A conditional variable (`!If [HasLocalEndpoint, ...]`) is for other runners
                // (`sam local invoke`); the local stack gives its functions their endpoints itself.
                .filter(|(_, v)| !is_conditional(v))
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), reference(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn is_conditional(value: &Value) -> bool {
    match value {
        Value::Tagged(tagged) => tagged.tag == "If",
        Value::Mapping(map) => map.contains_key("Fn::If"),
        _ => false,
    }
}

fn reference(value: &Value) -> Reference {
    match value {
        Value::Tagged(tagged) => {
            let inner = match &tagged.value {
                Value::String(s) => s.clone(),
                Value::Sequence(seq) => seq
                    .iter()
                    .map(|v| str_of(Some(v)))
                    .collect::<Vec<_>>()
                    .join("."),
                other => str_of(Some(other)),
            };
            match tagged.tag.to_string().trim_start_matches('!') {
                "Ref" => Reference::Ref(inner),
                "GetAtt" => {
                    let (resource, attribute) =
                        inner.split_once('.').unwrap_or((inner.as_str(), "Arn"));
                    Reference::GetAtt(resource.to_owned(), attribute.to_owned())
                }
                "Sub" => Reference::Sub(inner),
                _ => Reference::Literal(inner),
            }
        }
        Value::Mapping(map) if map.len() == 1 => {
            let Some((key, inner)) = map.iter().next().map(|(k, v)| (str_of(Some(k)), v)) else {
                return Reference::Literal(String::new());
            };
            match key.as_str() {
                "Ref" => Reference::Ref(str_of(Some(inner))),
                "Fn::Sub" => Reference::Sub(str_of(Some(inner))),
                "Fn::GetAtt" => {
                    reference(&Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                        tag: serde_norway::value::Tag::new("GetAtt"),
                        value: inner.clone(),
                    })))
                }
                _ => Reference::Literal(String::new()),
            }
        }
        other => Reference::Literal(str_of(Some(other))),
    }
}

fn str_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_template_is_understood() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template = Template::load(&path).expect("template.yaml parses");
        let inbound = template
            .queues
            .iter()
            .find(|q| q.logical_id == "InboundQueue")
            .expect("inbound queue");
        assert!(inbound.fifo);
        assert_eq!(inbound.redrive, Some(("InboundDLQ".to_owned(), 5)));
        assert_eq!(
            inbound.name,
            Reference::Sub("${AWS::StackName}-Inbound.fifo".into())
        );
        let webhook = template
            .functions
            .iter()
            .find(|f| f.binary == "whatsapp-webhook")
            .expect("webhook");
        assert!(
            webhook
                .http_events
                .contains(&("POST".to_owned(), "/whatsapp/webhook".to_owned()))
        );
        assert_eq!(
            webhook.environment.get("INBOUND_QUEUE_URL"),
            Some(&Reference::Ref("InboundQueue".into()))
        );
        assert_eq!(webhook.timeout_seconds, 6);
        assert_eq!(webhook.memory_mb, 256, "from Globals");
        let poll = &template
            .consumer_of("DamEventsQueue")
            .expect("change detection")
            .schedules[0];
        assert_eq!(poll.input, r#"{"poll":"recently_edited"}"#);
    }

    #[test]
    fn no_record_reaches_a_dlq_untried_and_every_consumer_can_dead_letter() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let template = Template::load(&path).expect("template.yaml parses");
        for queue in &template.queues {
            if let Some((dlq, max_receives)) = &queue.redrive {
                assert!(
                    *max_receives
                        > u64::from(shared::lambda::sqs_batch::RETURN_UNTRIED_AFTER_RECEIVES),
                    "{}: maxReceiveCount {max_receives} leaves no room to put untried records back",
                    queue.logical_id
                );
                // A consumer of two queues names the second one's DLQ in a variable of its own.
                if let Some(consumer) = template.consumer_of(&queue.logical_id) {
                    assert!(
                        consumer
                            .environment
                            .values()
                            .any(|v| v == &Reference::Ref(dlq.clone())),
                        "{} must be able to dead-letter what can never succeed on {}",
                        consumer.logical_id,
                        queue.logical_id
                    );
                }
            }
        }
    }

    #[test]
    fn for_each_stamps_out_a_fragment_per_value() {
        let text = r#"
Resources:
  Fn::ForEach::Queues:
    - Q
    - [Review, Campaign]
    - ${Q}Queue:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Sub "${AWS::StackName}-${Q}.fifo"
          FifoQueue: true
          RedrivePolicy:
            deadLetterTargetArn: !GetAtt [!Sub "${Q}DLQ", Arn]
            maxReceiveCount: 5
"#;
        let template = Template::parse(text).expect("parses");
        let mut queues: Vec<_> = template
            .queues
            .iter()
            .map(|q| (q.logical_id.clone(), q.name.clone(), q.redrive.clone()))
            .collect();
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            queues,
            [
                (
                    "CampaignQueue".to_owned(),
                    Reference::Sub("${AWS::StackName}-Campaign.fifo".into()),
                    Some(("CampaignDLQ".to_owned(), 5))
                ),
                (
                    "ReviewQueue".to_owned(),
                    Reference::Sub("${AWS::StackName}-Review.fifo".into()),
                    Some(("ReviewDLQ".to_owned(), 5))
                ),
            ]
        );
    }
}
