//! `connector`: parses the command line, runs the command, prints its report; exit status 1
//! when the report found problems or the command failed, 2 when the command line is wrong.

use std::io::Write as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match connector::parse_args(&args) {
        Ok(command) => connector::run(command, shared::config::Env::process()).await,
        Err(error) => Err(error),
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match outcome {
        Ok(outcome) => {
            let written = match &outcome.csv {
                // The CSV owns stdout; the summary goes to stderr.
                Some(csv) => out
                    .write_all(csv.as_bytes())
                    .and_then(|()| err.write_all(outcome.report.text().as_bytes())),
                None => out.write_all(outcome.report.text().as_bytes()),
            };
            if written.is_err() || !outcome.report.ok {
                return std::process::ExitCode::from(1);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            let usage = matches!(error, connector::AdminError::Usage(_));
            let _ = writeln!(err, "connector: {:#}", anyhow::Error::from(error));
            std::process::ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
