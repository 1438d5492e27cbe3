//! `templates validate | submit | status`.

use crate::graph::{TemplateApi, WabaTemplate};
use crate::report::Report;
use serde_json::Value;
use shared::connector_config::{TemplateRef, TemplateUse};
use shared::templates::{Catalogue, Template};
use shared::whatsapp::errors::ApiError;
use std::collections::BTreeMap;
use std::path::Path;

/// The configured templates, by use (from the connector configuration), when one was given.
pub type Configured = BTreeMap<TemplateUse, TemplateRef>;

fn use_name(usage: &TemplateUse) -> String {
    serde_json::to_value(usage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Checks every file of `dir` offline (and that the configuration's templates are in it): every
/// problem is reported by file and field.
pub fn validate(dir: &Path, configured: Option<&Configured>) -> (Catalogue, Report) {
    let catalogue = Catalogue::load(dir);
    let mut report = Report::new();
    for problem in &catalogue.problems {
        report.problem(problem.to_string());
    }
    if let Some(configured) = configured {
        for missing in catalogue.check_configuration(configured) {
            report.problem(missing);
        }
    }
    let files = catalogue.entries.len();
    if report.ok {
        report.line(format!(
            "{files} template files in {} are valid",
            dir.display()
        ));
    } else {
        let n = report.lines.len();
        report.line(format!(
            "{n} problem(s) in {} ({files} template files read)",
            dir.display()
        ));
    }
    (catalogue, report)
}

fn key(name: &str, language: &str) -> (String, String) {
    (name.to_owned(), language.to_owned())
}

fn describe(t: &WabaTemplate) -> String {
    match (&t.status[..], t.rejected_reason.as_deref()) {
        ("REJECTED", Some(reason)) if !reason.is_empty() => format!("REJECTED ({reason})"),
        (status, _) => status.to_owned(),
    }
}

/// Submits every catalogue template the WABA does not have yet; nothing when the catalogue has
/// problems.
pub async fn submit(dir: &Path, api: &TemplateApi) -> Result<Report, ApiError> {
    let (catalogue, mut report) = validate(dir, None);
    if !report.ok {
        report.problem("nothing submitted: fix the problems above first");
        return Ok(report);
    }
    let existing: BTreeMap<(String, String), WabaTemplate> = api
        .list()
        .await?
        .into_iter()
        .map(|t| (key(&t.name, &t.language), t))
        .collect();
    report.lines.clear();
    let (mut submitted, mut skipped) = (0, 0);
    for entry in &catalogue.entries {
        let t = &entry.template;
        if let Some(there) = existing.get(&key(&t.name, &t.language)) {
            skipped += 1;
            report.line(format!(
                "{} {}: already in the WABA, {}",
                t.name,
                t.language,
                describe(there)
            ));
            continue;
        }
        match api.create(t).await {
            Ok(created) => {
                submitted += 1;
                report.line(format!(
                    "{} {}: submitted as {}, {} ({})",
                    t.name, t.language, created.id, created.status, created.category
                ));
            }
            Err(ApiError::Graph { status, error }) => report.problem(format!(
                "{} {}: refused (HTTP {status}, code {}): {}",
                t.name,
                t.language,
                error.code,
                error
                    .error_data
                    .as_ref()
                    .and_then(|d| d.details.clone())
                    .unwrap_or(error.message.clone())
            )),
            Err(other) => return Err(other),
        }
    }
    report.line(format!(
        "{submitted} submitted, {skipped} already in the WABA"
    ));
    Ok(report)
}

/// What review and wording reach users: one text per component, examples aside.
fn wording(components: &[Value]) -> Vec<String> {
    components
        .iter()
        .map(|c| {
            let kind = c["type"].as_str().unwrap_or_default().to_ascii_uppercase();
            let buttons: Vec<String> = c["buttons"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|b| {
                            format!(
                                "{}:{}:{}",
                                b["type"].as_str().unwrap_or_default().to_ascii_uppercase(),
                                b["text"].as_str().unwrap_or_default(),
                                b["url"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{kind}|{}|{}|{}",
                c["format"].as_str().unwrap_or_default(),
                c["text"].as_str().unwrap_or_default(),
                buttons.join(",")
            )
        })
        .collect()
}

fn differs(local: &Template, there: &WabaTemplate) -> bool {
    let Some(components) = &there.components else {
        return false;
    };
    let local = local.to_request();
    let local: Vec<Value> = local["components"].as_array().cloned().unwrap_or_default();
    wording(&local) != wording(components)
}

/// Each catalogue template's review status in the WABA, what the WABA has that the catalogue
/// does not, wording that differs, and configured templates that cannot be sent yet.
pub async fn status(
    dir: &Path,
    api: &TemplateApi,
    configured: Option<&Configured>,
) -> Result<Report, ApiError> {
    let catalogue = Catalogue::load(dir);
    let mut report = Report::new();
    let waba: BTreeMap<(String, String), WabaTemplate> = api
        .list()
        .await?
        .into_iter()
        .map(|t| (key(&t.name, &t.language), t))
        .collect();
    let (mut approved, mut waiting) = (0, 0);
    for entry in &catalogue.entries {
        let t = &entry.template;
        match waba.get(&key(&t.name, &t.language)) {
            None => {
                waiting += 1;
                report.line(format!("{} {}: not submitted", t.name, t.language));
            }
            Some(there) => {
                if there.status == "APPROVED" {
                    approved += 1;
                } else {
                    waiting += 1;
                }
                let mut line = format!("{} {}: {}", t.name, t.language, describe(there));
                if there.category != t.category && !there.category.is_empty() {
                    line.push_str(&format!(
                        "; category {} in the WABA, {} in the catalogue",
                        there.category, t.category
                    ));
                }
                if differs(t, there) {
                    line.push_str("; its wording differs from the catalogue");
                }
                report.line(line);
            }
        }
    }
    for (name, language) in waba.keys() {
        if catalogue.get(name, language).is_none() {
            report.line(format!(
                "{name} {language}: in the WABA only, not in the catalogue"
            ));
        }
    }
    if let Some(configured) = configured {
        for missing in catalogue.check_configuration(configured) {
            report.problem(missing);
        }
        for (usage, r) in configured {
            let state = waba.get(&key(&r.name, &r.language));
            if state.is_none_or(|t| t.status != "APPROVED") {
                report.problem(format!(
                    "whatsapp.templates.{}: `{}` in {} cannot be sent yet ({})",
                    use_name(usage),
                    r.name,
                    r.language,
                    state.map_or("not in the WABA".to_owned(), describe)
                ));
            }
        }
    }
    report.line(format!(
        "{approved} approved, {waiting} pending, rejected or not submitted, of {} catalogue templates",
        catalogue.entries.len()
    ));
    Ok(report)
}
