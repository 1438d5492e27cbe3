//! `audit export --from YYYY-MM-DD --to YYYY-MM-DD [--out FILE.csv]`: the sharing audit (flow 5)
//! for a range of UTC days as CSV: when it was asked, the asset and version, the rep (name and
//! pseudonym), the recipient's pseudonym, the message id, and when it was sent, delivered and
//! read. Read through the `SharingAudit` port from the stack's `sharing-audit` table.

use crate::AdminError;
use crate::report::Report;
use crate::target::{Target, TargetOptions};
use shared::adapters::sharing_audit::{DynamoSharingAudit, MAX_DAYS, days};
use shared::ports::SharingAudit;
use std::path::PathBuf;

/// `connector audit --help`.
pub const HELP: &str = "\
usage: connector audit export --from YYYY-MM-DD --to YYYY-MM-DD [--out FILE.csv] [--stack NAME]

Exports the sharing audit (flow 5) of the UTC days --from to --to (both included, at most 367
days) as CSV: requested_at, asset, version, rep, rep_pseudonym, recipient_pseudonym, message_id,
sent, delivered, read (times in UTC, empty until the status arrives). Without --out the CSV goes
to stdout and the summary to stderr. The table is SHARING_AUDIT_TABLE, else <stack>-sharing-audit.";

/// A parsed `audit export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCommand {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--stack`.
    pub target: TargetOptions,
}

/// Parses the words after `audit`.
pub fn parse(args: &[String]) -> Result<AuditCommand, AdminError> {
    let parsed = crate::cli::parse(args, &[], &["--from", "--to", "--out", "--stack"])?;
    if parsed.positional.as_slice() != ["export"] {
        return Err(AdminError::Usage(
            "audit takes one subcommand: export".into(),
        ));
    }
    let required = |name: &str| {
        parsed
            .value(name)
            .map(str::to_owned)
            .ok_or_else(|| AdminError::Usage(format!("{name} YYYY-MM-DD is required")))
    };
    let (from, to) = (required("--from")?, required("--to")?);
    if days(&from, &to).is_none() {
        return Err(AdminError::Usage(format!(
            "--from {from} --to {to} is not a range of at most {MAX_DAYS} days (YYYY-MM-DD, from ≤ to)"
        )));
    }
    Ok(AuditCommand {
        from,
        to,
        out: parsed.value("--out").map(PathBuf::from),
        target: TargetOptions {
            stack: parsed.value("--stack").map(str::to_owned),
        },
    })
}

/// The CSV of the range and a summary line.
pub async fn export<A: SharingAudit>(
    audit: &A,
    from: &str,
    to: &str,
) -> Result<(String, Report), AdminError> {
    let records = audit.between(from, to).await?;
    let mut report = Report::new();
    report.line(format!("{} share(s) from {from} to {to}", records.len()));
    Ok((shared::domain::sharing::csv(&records), report))
}

/// `audit export` against the target's table.
pub async fn run(target: &Target, command: &AuditCommand) -> Result<(String, Report), AdminError> {
    let audit = DynamoSharingAudit::new(
        target.dynamodb.clone(),
        target.table("SHARING_AUDIT_TABLE")?,
    );
    export(&audit, &command.from, &command.to).await
}
