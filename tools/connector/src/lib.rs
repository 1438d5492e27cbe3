//! `connector`: the operator's command. Templates as code (`templates validate | submit |
//! status`), the contact directory's CSV (`contacts import | export`), the dead-letter queues
//! (`dlq list | show | redrive`), the sent-message lookup (`sent`) and a health summary
//! (`health`). `main` parses the arguments and prints; this library does the work, so tests drive
//! it directly.

pub mod audit_cmd;
pub mod campaign_cmd;
pub mod cli;
pub mod contacts_cmd;
pub mod dlq_cmd;
pub mod graph;
pub mod health_cmd;
pub mod redact;
pub mod report;
pub mod sent_cmd;
pub mod target;
pub mod templates_cmd;

use crate::graph::{GraphTarget, TemplateApi};
use crate::report::Report;
use shared::config::Env;
use shared::secrets::{Secret, SecretsLocation};
use std::path::PathBuf;

/// How to use the command.
pub const USAGE: &str = "\
usage:
  connector templates validate [DIR] [--config FILE]
  connector templates submit --waba ID [--dir DIR] [--graph-url URL] [--graph-version V]
  connector templates status --waba ID [--dir DIR] [--config FILE] [--graph-url URL] [--graph-version V]
  connector contacts import FILE.csv [--skip-bad-rows]
  connector contacts export [FILE.csv]
  connector campaign status CAMPAIGN
  connector audit export --from YYYY-MM-DD --to YYYY-MM-DD [--out FILE.csv] [--stack NAME]
  connector dlq list [--stack NAME]
  connector dlq show <queue> [--limit N] [--stack NAME]
  connector dlq redrive <queue> (--all | --id ID | --older-than DURATION) [--stack NAME]
  connector sent <wamid | send key> [--stack NAME]
  connector health [--stack NAME]
  connector <command> --help

DIR defaults to ./templates. The configuration (for the configured templates) is --config, else
CONNECTOR_CONFIG_FILE when set. The Graph token is WHATSAPP_ACCESS_TOKEN, else the secrets'
whatsapp_access_token (CONNECTOR_SECRETS_FILE or CONNECTOR_SECRETS_ARN); the Graph host is
--graph-url, else WHATSAPP_GRAPH_BASE_URL, else Meta's. Contacts use CONTACTS_TABLE, the AWS
environment (AWS_ENDPOINT_URL for a local emulator) and the secrets' pseudonym_key. Campaign
status uses CAMPAIGN_ROLLOUTS_TABLE and the same AWS environment.
dlq, sent and health find the stack's queues and tables by --stack NAME (else
CONNECTOR_STACK_NAME), the same against a real account and the local stack
(`connector dlq --help` says how).

Exit status: 0 done and nothing wrong; 1 the command ran and found a problem, or failed
(an AWS or Graph call, a file); 2 the command line is wrong.";

/// The help of `words` (the words before `--help`).
pub fn help(words: &[String]) -> String {
    let rest = words.get(1..).unwrap_or_default();
    match words.first().map(String::as_str) {
        Some("dlq") => dlq_cmd::help(rest).to_owned(),
        Some("sent") => sent_cmd::HELP.to_owned(),
        Some("health") => health_cmd::HELP.to_owned(),
        Some("audit") => audit_cmd::HELP.to_owned(),
        Some(group @ ("templates" | "contacts" | "campaign")) => {
            let prefix = match rest.first() {
                Some(word) => format!("  connector {group} {word}"),
                None => format!("  connector {group} "),
            };
            let lines: Vec<&str> = USAGE.lines().filter(|l| l.starts_with(&prefix)).collect();
            let notes = USAGE.split("\n\n").nth(1).unwrap_or_default();
            format!("usage:\n{}\n\n{notes}", lines.join("\n"))
        }
        _ => USAGE.to_owned(),
    }
}

/// Where the Graph API is, from the options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphOptions {
    /// The WABA id.
    pub waba: String,
    /// `--graph-url`.
    pub url: Option<String>,
    /// `--graph-version`.
    pub version: Option<String>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `templates validate`.
    Validate {
        /// The catalogue.
        dir: PathBuf,
        /// `--config`.
        config: Option<PathBuf>,
    },
    /// `templates submit`.
    Submit {
        /// The catalogue.
        dir: PathBuf,
        /// The WABA.
        graph: GraphOptions,
    },
    /// `templates status`.
    Status {
        /// The catalogue.
        dir: PathBuf,
        /// `--config`.
        config: Option<PathBuf>,
        /// The WABA.
        graph: GraphOptions,
    },
    /// `contacts import`.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// `--skip-bad-rows`.
        skip_bad_rows: bool,
    },
    /// `campaign status`.
    CampaignStatus {
        /// The campaign.
        campaign: String,
    },
    /// `contacts export`; stdout without a file.
    Export {
        /// Where to write.
        file: Option<PathBuf>,
    },
    /// `--help` anywhere: the help of the words before it.
    Help(String),
    /// `dlq list | show | redrive`.
    Dlq(dlq_cmd::DlqCommand),
    /// `sent`.
    Sent(sent_cmd::SentCommand),
    /// `health`.
    Health(health_cmd::HealthCommand),
    /// `audit export`.
    Audit(audit_cmd::AuditCommand),
}

/// Why the command could not do its work (its report says what it found when it could).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The command line is wrong.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// Settings are missing.
    #[error(transparent)]
    Settings(#[from] shared::config::ConfigError),
    /// No Graph token anywhere.
    #[error("no Graph token: set WHATSAPP_ACCESS_TOKEN or whatsapp_access_token in the secrets")]
    NoToken,
    /// The secrets did not load.
    #[error(transparent)]
    Secrets(#[from] shared::secrets::SecretsError),
    /// The connector configuration did not load.
    #[error("the connector configuration did not load")]
    ConnectorConfig(#[source] shared::connector_config::ConnectorConfigError),
    /// Graph refused or could not be reached.
    #[error(transparent)]
    Graph(#[from] shared::whatsapp::errors::ApiError),
    /// The directory refused or could not be reached.
    #[error("the contact directory failed")]
    Store(#[from] shared::ports::StoreError),
    /// An AWS call failed.
    #[error("{what} failed")]
    Aws {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file could not be read or written.
    #[error("{path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn usage(message: impl Into<String>) -> AdminError {
    AdminError::Usage(message.into())
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Command, AdminError> {
    if cli::wants_help(args) {
        let words: Vec<String> = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        return Ok(Command::Help(help(&words)));
    }
    // Groups with parsers of their own; a further group is one line here.
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("dlq") => return dlq_cmd::parse(rest).map(Command::Dlq),
        Some("sent") => return sent_cmd::parse(rest).map(Command::Sent),
        Some("health") => return health_cmd::parse(rest).map(Command::Health),
        Some("audit") => return audit_cmd::parse(rest).map(Command::Audit),
        _ => {}
    }
    let mut positional = Vec::new();
    let mut options: Vec<(String, Option<String>)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--skip-bad-rows" => options.push((arg.clone(), None)),
            "--waba" | "--dir" | "--config" | "--graph-url" | "--graph-version" => {
                let value = it
                    .next()
                    .ok_or_else(|| usage(format!("{arg} needs a value")))?;
                options.push((arg.clone(), Some(value.clone())));
            }
            other if other.starts_with("--") => {
                return Err(usage(format!("unknown option {other}")));
            }
            other => positional.push(other.to_owned()),
        }
    }
    let option = |name: &str| {
        options
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let flag = |name: &str| options.iter().any(|(n, _)| n == name);
    let allowed = |names: &[&str]| match options.iter().find(|(n, _)| !names.contains(&n.as_str()))
    {
        Some((n, _)) => Err(usage(format!("{n} does not apply here"))),
        None => Ok(()),
    };
    let graph = || -> Result<GraphOptions, AdminError> {
        Ok(GraphOptions {
            waba: option("--waba").ok_or_else(|| usage("--waba <id> is required"))?,
            url: option("--graph-url"),
            version: option("--graph-version"),
        })
    };
    let dir = || PathBuf::from(option("--dir").unwrap_or_else(|| "templates".into()));
    let words: Vec<&str> = positional.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["templates", "validate", rest @ ..] if rest.len() <= 1 => {
            allowed(&["--config"])?;
            Ok(Command::Validate {
                dir: rest
                    .first()
                    .map_or_else(|| PathBuf::from("templates"), PathBuf::from),
                config: option("--config").map(PathBuf::from),
            })
        }
        ["templates", "submit"] => {
            allowed(&["--waba", "--dir", "--graph-url", "--graph-version"])?;
            Ok(Command::Submit {
                dir: dir(),
                graph: graph()?,
            })
        }
        ["templates", "status"] => {
            allowed(&[
                "--waba",
                "--dir",
                "--config",
                "--graph-url",
                "--graph-version",
            ])?;
            Ok(Command::Status {
                dir: dir(),
                config: option("--config").map(PathBuf::from),
                graph: graph()?,
            })
        }
        ["contacts", "import", file] => {
            allowed(&["--skip-bad-rows"])?;
            Ok(Command::Import {
                file: PathBuf::from(file),
                skip_bad_rows: flag("--skip-bad-rows"),
            })
        }
        ["contacts", "export", rest @ ..] if rest.len() <= 1 => {
            allowed(&[])?;
            Ok(Command::Export {
                file: rest.first().map(PathBuf::from),
            })
        }
        ["campaign", "status", campaign] => {
            allowed(&[])?;
            Ok(Command::CampaignStatus {
                campaign: (*campaign).to_owned(),
            })
        }
        [] => Err(usage("no command given")),
        _ => Err(usage(format!("unknown command: {}", words.join(" ")))),
    }
}

/// What a run produced: the report (stderr-free lines for stdout) and, for an export to stdout,
/// the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// CSV to print on stdout (an export without a file); the report then goes to stderr.
    pub csv: Option<String>,
}

fn read(path: &std::path::Path) -> Result<String, AdminError> {
    std::fs::read_to_string(path).map_err(|source| AdminError::File {
        path: path.to_owned(),
        source,
    })
}

async fn configured(
    explicit: Option<PathBuf>,
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<Option<templates_cmd::Configured>, AdminError> {
    let Some(path) = explicit.or_else(|| env.optional("CONNECTOR_CONFIG_FILE").map(PathBuf::from))
    else {
        return Ok(None);
    };
    let config = shared::connector_config::ConnectorConfig::parse(&read(&path)?)
        .map_err(AdminError::ConnectorConfig)?;
    Ok(Some(config.whatsapp.templates))
}

async fn template_api<F: Fn(&str) -> Option<String>>(
    graph: GraphOptions,
    mut env: Env<F>,
) -> Result<TemplateApi, AdminError> {
    let token = env.optional("WHATSAPP_ACCESS_TOKEN").map(Secret::new);
    let location = token.is_none().then(|| SecretsLocation::from_env(&mut env));
    let defaults = shared::whatsapp::client::GraphApiConfig::meta("");
    let base_url = graph
        .url
        .or_else(|| env.optional("WHATSAPP_GRAPH_BASE_URL"))
        .unwrap_or(defaults.base_url);
    let version = graph
        .version
        .or_else(|| env.optional("WHATSAPP_GRAPH_VERSION"))
        .unwrap_or(defaults.version);
    env.finish()?;
    let token = match (token, location) {
        (Some(token), _) => token,
        (None, Some(location)) => location
            .load(&shared::aws::load().await)
            .await?
            .whatsapp_access_token
            .ok_or(AdminError::NoToken)?,
        (None, None) => return Err(AdminError::NoToken),
    };
    Ok(TemplateApi::new(GraphTarget {
        base_url,
        version,
        waba_id: graph.waba,
        token,
    })?)
}

/// Runs a command with settings from `env`.
pub async fn run<F: Fn(&str) -> Option<String>>(
    command: Command,
    env: Env<F>,
) -> Result<Outcome, AdminError> {
    let report = |report| Outcome { report, csv: None };
    match command {
        Command::Help(text) => Ok(report(Report {
            lines: vec![text],
            ok: true,
        })),
        Command::Dlq(command) => {
            let target = target(command.target(), &env).await?;
            Ok(report(dlq_cmd::run(&target, &command).await?))
        }
        Command::Sent(command) => {
            let target = target(&command.target, &env).await?;
            Ok(report(sent_cmd::lookup(&target, &command.id).await?))
        }
        Command::Health(command) => {
            let target = target(&command.target, &env).await?;
            Ok(report(health_cmd::run(&target, &command).await?))
        }
        Command::Audit(command) => {
            let target = target(&command.target, &env).await?;
            let (csv, summary) = audit_cmd::run(&target, &command).await?;
            match &command.out {
                Some(path) => {
                    std::fs::write(path, csv).map_err(|source| AdminError::File {
                        path: path.clone(),
                        source,
                    })?;
                    Ok(report(summary))
                }
                None => Ok(Outcome {
                    report: summary,
                    csv: Some(csv),
                }),
            }
        }
        Command::Validate { dir, config } => {
            let configured = configured(config, &env).await?;
            Ok(report(templates_cmd::validate(&dir, configured.as_ref()).1))
        }
        Command::Submit { dir, graph } => {
            let api = template_api(graph, env).await?;
            Ok(report(templates_cmd::submit(&dir, &api).await?))
        }
        Command::Status { dir, config, graph } => {
            let configured = configured(config, &env).await?;
            let api = template_api(graph, env).await?;
            Ok(report(
                templates_cmd::status(&dir, &api, configured.as_ref()).await?,
            ))
        }
        Command::Import {
            file,
            skip_bad_rows,
        } => {
            let text = read(&file)?;
            let (directory, secrets) = directory(env).await?;
            let pseudonyms = shared::pseudonym::Pseudonymizer::new(&secrets.pseudonym_key);
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let options = contacts_cmd::ImportOptions {
                skip_bad_rows,
                ..contacts_cmd::ImportOptions::default()
            };
            Ok(report(
                contacts_cmd::import(&directory, &text, &name, &pseudonyms, options).await,
            ))
        }
        Command::CampaignStatus { campaign } => {
            Ok(report(campaign_cmd::run(&campaign, env).await?))
        }
        Command::Export { file } => {
            let (directory, _) = directory(env).await?;
            let (csv, summary) = contacts_cmd::export(&directory).await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, csv).map_err(|source| AdminError::File {
                        path: path.clone(),
                        source,
                    })?;
                    Ok(report(summary))
                }
                None => Ok(Outcome {
                    report: summary,
                    csv: Some(csv),
                }),
            }
        }
    }
}

/// The stack the operations subcommands look at, with the AWS SDK's environment.
async fn target<F: Fn(&str) -> Option<String>>(
    options: &target::TargetOptions,
    env: &Env<F>,
) -> Result<target::Target, AdminError> {
    target::Target::new(&shared::aws::load().await, options, env)
}

async fn directory<F: Fn(&str) -> Option<String>>(
    mut env: Env<F>,
) -> Result<
    (
        shared::adapters::directory::DynamoContactDirectory,
        shared::secrets::ConnectorSecrets,
    ),
    AdminError,
> {
    let table = env.required("CONTACTS_TABLE");
    let location = SecretsLocation::from_env(&mut env);
    env.finish()?;
    let aws = shared::aws::load().await;
    let secrets = location.load(&aws).await?;
    Ok((
        shared::adapters::directory::DynamoContactDirectory::new(
            aws_sdk_dynamodb::Client::new(&aws),
            table,
        ),
        secrets,
    ))
}
