//! `campaign status <campaign>`: the status per region of each package of a campaign
//! (notified / confirmed / format requested / flagged), read from the campaign rollouts table
//! through the `CampaignStore` port, the same text the WhatsApp `status <campaign>` command sends.

use crate::AdminError;
use crate::report::Report;
use shared::config::Env;
use shared::ports::CampaignStore;

/// The report for `campaign`: one heading per package, one line per region.
pub async fn status<S: CampaignStore>(store: &S, campaign: &str) -> Result<Report, AdminError> {
    let mut report = Report::new();
    for line in shared::flows::campaign_rollout::status_text(store, campaign).await? {
        report.line(line);
    }
    Ok(report)
}

/// Runs `campaign status` against the table named by `CAMPAIGN_ROLLOUTS_TABLE` (the AWS
/// environment as for the other commands; AWS_ENDPOINT_URL for a local emulator).
pub async fn run<F: Fn(&str) -> Option<String>>(
    campaign: &str,
    mut env: Env<F>,
) -> Result<Report, AdminError> {
    let table = env.required("CAMPAIGN_ROLLOUTS_TABLE");
    env.finish()?;
    let aws = shared::aws::load().await;
    let store = shared::adapters::campaigns::DynamoCampaignStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        table,
    );
    status(&store, campaign).await
}
