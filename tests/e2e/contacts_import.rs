//! `connector contacts import / export` against the DynamoDB directory on moto: a file with
//! one bad row reports that line and imports nothing; `--skip-bad-rows` imports the rest; an export
//! imports back; 10,000 contacts import (the time is printed for BENCHMARKS.md, never asserted).

use connector::contacts_cmd::{self, ImportOptions};
use e2e::TestEnv;
use shared::adapters::directory::DynamoContactDirectory;
use shared::domain::contact::Role;
use shared::ports::ContactDirectory;
use shared::pseudonym::Pseudonymizer;
use shared::secrets::Secret;
use std::fmt::Write as _;

const HEADER: &str = "phone,name,roles,regions,language,time_zone,quiet_hours,project_tag,opted_in_at,opted_in_source\n";

fn pseudonyms() -> Pseudonymizer {
    Pseudonymizer::new(&Secret::new("local-pseudonym-key-0123456789abcdef0123"))
}

fn directory(env: &TestEnv) -> DynamoContactDirectory {
    DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        env.stack.resources.tables["ContactsTable"].clone(),
    )
}

fn rows(n: usize) -> String {
    let mut csv = HEADER.to_owned();
    for i in 0..n {
        let role = Role::ALL[i % Role::ALL.len()].as_str();
        writeln!(
            csv,
            "+4477009{i:05},Contact {i},{role},EU,fr_FR,Europe/Paris,22:00-07:00,BRIDGE-{},2026-11-02,hr",
            i % 7
        )
        .expect("write");
    }
    csv
}

#[tokio::test]
async fn a_file_with_one_bad_row_reports_that_line_and_imports_nothing() {
    let env = TestEnv::start().await;
    let directory = directory(&env);
    let mut csv = rows(5);
    // Line 4 (the header is line 1): the third contact has a role nobody knows.
    csv = csv.replace("Contact 2,regional", "Contact 2,boss");
    let report = contacts_cmd::import(
        &directory,
        &csv,
        "team.csv",
        &pseudonyms(),
        ImportOptions::default(),
    )
    .await;
    assert!(!report.ok);
    assert_eq!(
        report.lines,
        vec![
            "team.csv: line 4: unknown role `boss` (known: approver, field, regional, rep, legal, owner, ugc)".to_owned(),
            "nothing imported: 1 of 5 rows are bad; fix them or pass --skip-bad-rows".to_owned(),
        ]
    );
    assert_eq!(directory.all().await.expect("scan"), vec![]);

    let skipped = contacts_cmd::import(
        &directory,
        &csv,
        "team.csv",
        &pseudonyms(),
        ImportOptions {
            skip_bad_rows: true,
            ..ImportOptions::default()
        },
    )
    .await;
    assert!(skipped.ok, "{:#?}", skipped.lines);
    assert_eq!(
        skipped.lines.last().map(String::as_str),
        Some("team.csv: 4 contacts imported of 5 rows, 1 bad rows skipped")
    );
    assert_eq!(directory.all().await.expect("scan").len(), 4);
    let regional = directory.with_role(Role::Regional).await.expect("role");
    assert!(regional.is_empty(), "the bad row's contact was not written");
}

#[tokio::test]
async fn an_export_imports_back_and_keeps_a_recorded_opt_out() {
    let env = TestEnv::start().await;
    let directory = directory(&env);
    let report = contacts_cmd::import(
        &directory,
        &rows(3),
        "a.csv",
        &pseudonyms(),
        ImportOptions::default(),
    )
    .await;
    assert!(report.ok, "{:#?}", report.lines);
    let first = pseudonyms().pseudonym("+447700900000");
    directory.opt_out(&first, 1_000).await.expect("stop");
    let (csv, summary) = contacts_cmd::export(&directory).await.expect("export");
    assert_eq!(summary.lines, vec!["3 contacts exported".to_owned()]);
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.contains(",1970-01-01T00:00:01Z\n"),
        "the opt-out time is exported"
    );
    let again = contacts_cmd::import(
        &directory,
        &csv,
        "export.csv",
        &pseudonyms(),
        ImportOptions::default(),
    )
    .await;
    assert!(again.ok, "{:#?}", again.lines);
    let entry = directory.get(&first).await.expect("get").expect("entry");
    assert!(
        entry.is_opted_out(),
        "importing an export never clears an opt-out"
    );
    assert_eq!(entry.name.as_deref(), Some("Contact 0"));
    assert_eq!(
        entry.roles.iter().copied().collect::<Vec<_>>(),
        vec![Role::Approver]
    );
}

#[tokio::test]
async fn ten_thousand_contacts_import_and_every_one_is_in_the_directory() {
    // Its own moto: 20,000 writes would hold up every other test's calls on the shared one.
    let env = TestEnv::start_alone(|_| {}).await;
    let directory = directory(&env);
    let csv = rows(10_000);
    let started = std::time::Instant::now();
    let report = contacts_cmd::import(
        &directory,
        &csv,
        "big.csv",
        &pseudonyms(),
        ImportOptions::default(),
    )
    .await;
    let took = started.elapsed();
    assert!(report.ok, "{:#?}", report.lines);
    assert_eq!(
        report.lines,
        vec!["big.csv: 10000 contacts imported of 10000 rows".to_owned()]
    );
    let all = directory.all().await.expect("scan");
    assert_eq!(all.len(), 10_000);
    let field = directory.with_role(Role::Field).await.expect("role");
    assert_eq!(field.len(), 10_000 / 7 + usize::from(10_000 % 7 > 1));
    // For BENCHMARKS.md; not an assertion (speed belongs to the benchmark, not the test).
    eprintln!("contacts import: 10000 rows into moto in {took:?}");
}
