//! The operator subcommands of the `connector` binary as scripts run them: `--help` for the command and every subcommand (exit
//! status 0), a wrong command line (2), a command that ran and failed (1).

use std::process::{Command, Output};

fn connector(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_connector"))
        .args(args)
        // Nowhere to reach: a command that gets past its arguments fails fast.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("CONNECTOR_STACK_NAME")
        .env_remove("CONNECTOR_QUEUE_URLS")
        .output()
        .expect("the connector binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_the_exit_statuses() {
    for args in [&["--help"][..], &["-h"], &["help", "--help"]] {
        let output = connector(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let text = stdout(&output);
        for command in [
            "templates validate",
            "templates submit",
            "templates status",
            "contacts import",
            "contacts export",
            "dlq list",
            "dlq show",
            "dlq redrive",
            "sent <wamid | send key>",
            "health",
        ] {
            assert!(
                text.contains(&format!("connector {command}")),
                "{command}:\n{text}"
            );
        }
        assert!(text.contains("Exit status: 0"), "{text}");
    }
}

#[test]
fn every_subcommand_has_its_own_help() {
    let cases: [(&[&str], &str); 11] = [
        (&["dlq", "--help"], "connector dlq redrive <queue>"),
        (&["dlq", "list", "--help"], "usage: connector dlq list"),
        (&["dlq", "show", "--help"], "--limit N"),
        (&["dlq", "redrive", "--help"], "--older-than DURATION"),
        (&["sent", "--help"], "usage: connector sent"),
        (&["health", "--help"], "usage: connector health"),
        (&["templates", "--help"], "connector templates submit"),
        (
            &["templates", "validate", "--help"],
            "connector templates validate",
        ),
        (&["templates", "status", "--help"], "--waba ID"),
        (&["contacts", "import", "--help"], "--skip-bad-rows"),
        (
            &["contacts", "export", "--help"],
            "connector contacts export",
        ),
    ];
    for (args, expected) in cases {
        let output = connector(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let text = stdout(&output);
        assert!(text.contains(expected), "{args:?}:\n{text}");
    }
    let redrive = stdout(&connector(&["dlq", "redrive", "--help"]));
    assert!(
        !redrive.contains("connector templates"),
        "only its own help:\n{redrive}"
    );
}

#[test]
fn a_wrong_command_line_exits_2_and_a_failed_command_exits_1() {
    for args in [
        &["bogus"][..],
        &[],
        &["dlq", "redrive", "Outbound"],
        &["dlq", "redrive", "Outbound", "--all", "--id", "x"],
        &["dlq", "show", "Outbound", "--limit", "none"],
        &["dlq", "list", "--frobnicate"],
        &["sent"],
        &["health", "extra"],
        // No stack and no queue URLs: nothing to look at.
        &["health"],
    ] {
        let output = connector(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("usage"),
            "{args:?} explains the usage"
        );
    }
    // The command line is right; AWS cannot be reached.
    let output = connector(&["dlq", "list", "--stack", "nowhere"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("listing the queues failed"));
}
