//! Which deployment the operations subcommands look at: the queues and tables of one stack, found
//! by the CloudFormation names of `template.yaml` (`<stack>-<Queue>.fifo`, `<stack>-<Queue>-dlq.fifo`,
//! `<stack>-DamEvents`, `<stack>-sends`, …) or given one by one in the environment. The same code
//! reads a real account and the local stack: the AWS SDK's own environment says where
//! (`AWS_ENDPOINT_URL` for moto).

use crate::AdminError;
use aws_config::SdkConfig;
use shared::config::Env;
use std::collections::BTreeMap;

/// Help lines every operations subcommand prints about finding the stack.
pub const TARGET_HELP: &str = "\
Where: --stack NAME (else CONNECTOR_STACK_NAME) finds the queues and tables by the names
template.yaml gives them (<stack>-<Queue>.fifo, <stack>-<Queue>-dlq.fifo, <stack>-sends, ...).
Without a stack, CONNECTOR_QUEUE_URLS (comma-separated queue URLs) and the functions' table
variables (SENDS_TABLE, SENT_MESSAGES_TABLE, ASSET_STATE_TABLE, EXPIRY_ALERTS_TABLE,
SHARING_AUDIT_TABLE) say where;
they also override what the stack name gives. The AWS SDK's environment picks the account
(AWS_PROFILE, AWS_REGION, ...) or a local emulator: against the local stack (local/stack.sh) set
AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test and --stack local.";

/// `--stack` as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// `--stack`.
    pub stack: Option<String>,
}

/// The tables the operations subcommands read: (the functions' variable, the template's suffix).
const TABLES: [(&str, &str); 5] = [
    ("SENDS_TABLE", "sends"),
    ("SHARING_AUDIT_TABLE", "sharing-audit"),
    ("SENT_MESSAGES_TABLE", "sent-messages"),
    ("ASSET_STATE_TABLE", "asset-state"),
    ("EXPIRY_ALERTS_TABLE", "expiry-alerts"),
];

/// One queue of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// Its label: the name without the stack prefix and `.fifo` (`Outbound`, `Outbound-dlq`).
    pub label: String,
    /// Its URL.
    pub url: String,
}

impl QueueRef {
    /// Whether it is a dead-letter queue.
    pub fn is_dlq(&self) -> bool {
        self.label.ends_with("-dlq")
    }

    /// Whether it is a FIFO queue.
    pub fn is_fifo(&self) -> bool {
        self.url.ends_with(".fifo")
    }

    /// The label of the queue a DLQ serves.
    pub fn source_label(&self) -> Option<&str> {
        self.label.strip_suffix("-dlq")
    }
}

/// The deployment: clients and where its resources are.
#[derive(Debug, Clone)]
pub struct Target {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    stack: Option<String>,
    queue_urls: Vec<String>,
    tables: BTreeMap<&'static str, String>,
}

fn label_of(url: &str, stack: Option<&str>) -> String {
    let name = url.rsplit('/').next().unwrap_or(url);
    let name = name.strip_suffix(".fifo").unwrap_or(name);
    stack
        .and_then(|s| name.strip_prefix(&format!("{s}-")))
        .unwrap_or(name)
        .to_owned()
}

fn aws_error(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> AdminError {
    AdminError::Aws {
        what: what.to_owned(),
        source: Box::new(error),
    }
}

impl Target {
    /// Reads `--stack` / `CONNECTOR_STACK_NAME`, `CONNECTOR_QUEUE_URLS` and the table variables.
    pub fn new<F: Fn(&str) -> Option<String>>(
        aws: &SdkConfig,
        options: &TargetOptions,
        env: &Env<F>,
    ) -> Result<Self, AdminError> {
        let stack = options
            .stack
            .clone()
            .or_else(|| env.optional("CONNECTOR_STACK_NAME"));
        let queue_urls: Vec<String> = env
            .optional("CONNECTOR_QUEUE_URLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if stack.is_none() && queue_urls.is_empty() {
            return Err(AdminError::Usage(
                "no stack: pass --stack NAME or set CONNECTOR_STACK_NAME (or CONNECTOR_QUEUE_URLS)"
                    .into(),
            ));
        }
        let tables = TABLES
            .iter()
            .filter_map(|(variable, suffix)| {
                env.optional(variable)
                    .or_else(|| stack.as_ref().map(|s| format!("{s}-{suffix}")))
                    .map(|name| (*variable, name))
            })
            .collect();
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(aws),
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            stack,
            queue_urls,
            tables,
        })
    }

    /// The table a function knows as `variable` (`SENDS_TABLE`, ...).
    pub fn table(&self, variable: &str) -> Result<&str, AdminError> {
        self.tables
            .get(variable)
            .map(String::as_str)
            .ok_or_else(|| {
                AdminError::Usage(format!(
                    "no {variable}: pass --stack NAME or set {variable}"
                ))
            })
    }

    /// Every queue: the explicit URLs, and the stack's by its name prefix; sorted by label.
    pub async fn queues(&self) -> Result<Vec<QueueRef>, AdminError> {
        let mut urls = self.queue_urls.clone();
        if let Some(stack) = &self.stack {
            let prefix = format!("{stack}-");
            let mut token = None;
            loop {
                let page = self
                    .sqs
                    .list_queues()
                    .queue_name_prefix(&prefix)
                    .max_results(1000)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| aws_error("listing the queues", e))?;
                // `t1-` also prefixes stack `t1-2`'s queues; the template's queue names start
                // with a capital letter.
                urls.extend(
                    page.queue_urls
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|url| {
                            label_of(url, None)
                                .strip_prefix(&prefix)
                                .and_then(|rest| rest.chars().next())
                                .is_some_and(|c| c.is_ascii_uppercase())
                        }),
                );
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
        }
        let mut queues: Vec<QueueRef> = urls
            .into_iter()
            .map(|url| QueueRef {
                label: label_of(&url, self.stack.as_deref()),
                url,
            })
            .collect();
        queues.sort_by(|a, b| a.label.cmp(&b.label));
        queues.dedup_by(|a, b| a.url == b.url);
        Ok(queues)
    }

    /// The dead-letter queue `name` means: `Outbound`, `Outbound-dlq`, `OutboundDLQ`, its full
    /// name or its URL.
    pub async fn dlq(&self, name: &str) -> Result<QueueRef, AdminError> {
        let queues = self.queues().await?;
        let wanted = name.trim_end_matches(".fifo");
        let wanted = wanted.strip_suffix("DLQ").unwrap_or(wanted);
        let wanted = wanted.strip_suffix("-dlq").unwrap_or(wanted);
        let dlqs: Vec<&QueueRef> = queues.iter().filter(|q| q.is_dlq()).collect();
        let found = dlqs
            .iter()
            .find(|q| q.url == name)
            .or_else(|| {
                dlqs.iter().find(|q| {
                    q.source_label()
                        .is_some_and(|s| s == wanted || s.ends_with(&format!("-{wanted}")))
                })
            })
            .copied()
            .cloned();
        found.ok_or_else(|| {
            let known: Vec<&str> = dlqs.iter().filter_map(|q| q.source_label()).collect();
            AdminError::Usage(format!(
                "no dead-letter queue {name} (known: {})",
                if known.is_empty() {
                    "none found".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The queue a DLQ's records go back to (its label without `-dlq`).
    pub async fn source_of(&self, dlq: &QueueRef) -> Result<QueueRef, AdminError> {
        let source = dlq.source_label().unwrap_or_default();
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.label == source)
            .ok_or_else(|| {
                AdminError::Usage(format!(
                    "the source queue {source} of {} is not known: add its URL to CONNECTOR_QUEUE_URLS",
                    dlq.label
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_the_stack_and_fifo_and_name_the_source_of_a_dlq() {
        let dlq = QueueRef {
            label: label_of(
                "https://sqs.eu-west-1.amazonaws.com/1/prod-Outbound-dlq.fifo",
                Some("prod"),
            ),
            url: "https://sqs.eu-west-1.amazonaws.com/1/prod-Outbound-dlq.fifo".into(),
        };
        assert_eq!(dlq.label, "Outbound-dlq");
        assert!(dlq.is_dlq() && dlq.is_fifo());
        assert_eq!(dlq.source_label(), Some("Outbound"));
        assert_eq!(
            label_of("http://h/1/prod-DamEvents", None),
            "prod-DamEvents"
        );
    }
}
