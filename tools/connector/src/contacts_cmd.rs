//! `contacts import | export`: the directory as CSV, through the `ContactDirectory` port.

use crate::report::Report;
use shared::domain::directory_csv;
use shared::error::Retryable as _;
use shared::ports::{ContactDirectory, StoreError};
use shared::pseudonym::Pseudonymizer;

/// How an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Import the good rows of a file that has bad ones (otherwise nothing is imported).
    pub skip_bad_rows: bool,
    /// Contacts per `put_many` call.
    pub chunk: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            skip_bad_rows: false,
            chunk: 500,
        }
    }
}

/// Checks every row, reports each bad one by line and reason, and writes the good ones unless
/// the file has bad rows and `skip_bad_rows` is off. A rerun writes the same entries again
/// (writes are idempotent and keep recorded opt-outs).
pub async fn import<D: ContactDirectory>(
    directory: &D,
    text: &str,
    file_name: &str,
    pseudonyms: &Pseudonymizer,
    options: ImportOptions,
) -> Report {
    let mut report = Report::new();
    let file = match directory_csv::parse_import(text, pseudonyms, &format!("import:{file_name}")) {
        Ok(file) => file,
        Err(error) => {
            report.problem(format!("{file_name}: {error}"));
            report.problem("nothing imported");
            return report;
        }
    };
    let rows = file.contacts.len() + file.problems.len();
    for problem in &file.problems {
        report.problem(format!("{file_name}: {problem}"));
    }
    if !file.problems.is_empty() && !options.skip_bad_rows {
        report.problem(format!(
            "nothing imported: {} of {rows} rows are bad; fix them or pass --skip-bad-rows",
            file.problems.len()
        ));
        return report;
    }
    let contacts: Vec<_> = file.contacts.into_iter().map(|(_, c)| c).collect();
    let mut written = 0;
    let mut failure = None;
    // The directory bounds the writes in flight; chunks bound what one failure leaves unsaid.
    for chunk in contacts.chunks(options.chunk.max(1)) {
        match directory.put_many(chunk).await {
            Ok(()) => written += chunk.len(),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if let Some(error) = &failure {
        report.problem(format!(
            "writing stopped after {written} of {} contacts ({error}{}); rerun the import to finish it",
            contacts.len(),
            if error.is_retryable() {
                ", retryable"
            } else {
                ""
            }
        ));
    }
    let skipped = if file.problems.is_empty() {
        String::new()
    } else {
        format!(", {} bad rows skipped", file.problems.len())
    };
    report.line(format!(
        "{file_name}: {written} contacts imported of {rows} rows{skipped}"
    ));
    // Skipped bad rows were asked for: the import itself succeeded.
    report.ok = failure.is_none();
    report
}

/// Every entry with a number, as CSV, and a summary line.
pub async fn export<D: ContactDirectory>(directory: &D) -> Result<(String, Report), StoreError> {
    let mut contacts = directory.all().await?;
    contacts.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
    let without = contacts.iter().filter(|c| c.address.is_none()).count();
    let mut report = Report::new();
    report.line(format!(
        "{} contacts exported{}",
        contacts.len() - without,
        if without > 0 {
            format!(
                "; {without} opt-out entries of users not in the directory have no number and are left out"
            )
        } else {
            String::new()
        }
    ));
    Ok((directory_csv::write_export(&contacts), report))
}
