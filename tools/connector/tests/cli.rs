//! The `connector` binary itself: exit statuses and what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connector"))
        .args(args)
        .env_remove("CONNECTOR_CONFIG_FILE")
        .output()
        .expect("run connector")
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_repository_catalogue_validates_against_the_local_configuration() {
    let root = repository();
    let templates = root.join("templates");
    let config = root.join("local/connector.yaml");
    let output = admin(&[
        "templates",
        "validate",
        templates.to_str().expect("path"),
        "--config",
        config.to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("12 template files in"));
}

#[test]
fn a_broken_placeholder_is_reported_by_file_and_field_and_fails_the_command() {
    let dir = std::env::temp_dir().join(format!("connector-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repository().join("templates"), &dir);
    let file = dir.join("content_receipt/en_US.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("Reference: {{3}}", "Reference: {{4}}")).expect("write");

    let output = admin(&["templates", "validate", dir.to_str().expect("path")]);
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    let expected = format!(
        "{}: components[0].text: has {{{{4}}}} where {{{{3}}}} is expected",
        file.display()
    );
    assert!(printed.contains(&expected), "{printed}");
    // Only the broken file is reported: its Spanish sibling is not compared with it.
    assert!(printed.contains("1 problem(s)"), "{printed}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_wrong_command_line_prints_the_usage_and_exits_2() {
    for args in [
        &["templates", "submit"][..],
        &["contacts", "import"][..],
        &["templates", "validate", "--waba", "1"][..],
        &["frobnicate"][..],
    ] {
        let output = admin(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage:"));
    }
}
