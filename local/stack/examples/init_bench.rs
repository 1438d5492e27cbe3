//! Cold start of every function, measured as Lambda sees it: from the process start to its first
//! `GET /2018-06-01/runtime/invocation/next` on a Runtime API (this program listens on loopback in
//! its place), with the function's settings from `local/sam-env.json` and its secrets and
//! configuration read from the committed files, as `cargo lambda watch` runs it. Also prints each
//! package's size: the arm64 bootstrap `cargo lambda build --release --arm64` wrote, when present.
//!
//! ```text
//! cargo build --release                                   # host bootstraps, target/release/<fn>
//! cargo lambda build --release --arm64                    # what ships, target/lambda/<fn>/bootstrap
//! cargo build --workspace --all-targets && target/debug/examples/init_bench [runs]
//! ```
//!
//! With `CARGO_TARGET_DIR` set (the release builds kept apart from the debug one), the bootstraps
//! are read from there.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use local::moto::workspace_root;
use local::template::Template;

const NEXT: &str = "GET /2018-06-01/runtime/invocation/next";

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("runs must be a number")?
        .unwrap_or(20);
    let root = workspace_root();
    let template = Template::load(&root.join("template.yaml"))?;
    let env_file =
        std::fs::read_to_string(root.join("local/sam-env.json")).context("local/sam-env.json")?;
    let envs: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&env_file)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| function | arm64 bootstrap (bytes) | zipped (bytes) | init median (ms) | init p95 (ms) | init max (ms) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for function in &template.functions {
        let binary = target.join("release").join(&function.binary);
        if !binary.exists() {
            writeln!(out, "| {} | not built | - | - | - | - |", function.binary)?;
            continue;
        }
        let env = envs
            .get(&function.logical_id)
            .with_context(|| format!("{} is not in local/sam-env.json", function.logical_id))?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(cold_start(&binary, env, &root)?);
        }
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
        let shipped = target
            .join("lambda")
            .join(&function.binary)
            .join("bootstrap");
        let (size, zipped) = match std::fs::metadata(&shipped) {
            Ok(meta) => (meta.len().to_string(), zipped_size(&shipped)?),
            Err(_) => ("not built".to_owned(), "-".to_owned()),
        };
        writeln!(
            out,
            "| {} | {size} | {zipped} | {} | {} | {} |",
            function.binary,
            ms(at(0.5)),
            ms(at(0.95)),
            ms(at(1.0))
        )?;
    }
    Ok(())
}

/// One cold start: the time until the function asks for its first event.
fn cold_start(
    binary: &Path,
    env: &BTreeMap<String, String>,
    root: &Path,
) -> anyhow::Result<Duration> {
    let api = TcpListener::bind("127.0.0.1:0")?;
    let address = api.local_addr()?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .envs(env)
        // Secrets and configuration from the committed files, not from moto.
        .env_remove("CONNECTOR_SECRETS_ARN")
        .env_remove("CONNECTOR_CONFIG_PARAMETER")
        .env("CONNECTOR_SECRETS_FILE", root.join("local/secrets.json"))
        .env("CONNECTOR_CONFIG_FILE", root.join("local/connector.yaml"))
        // Nothing listens there: a function that called AWS while starting would fail to start.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(
            "AWS_LAMBDA_FUNCTION_NAME",
            binary.file_name().unwrap_or_default(),
        )
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "init-bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "init-bench")
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn()?;
    api.set_nonblocking(true)?;
    let deadline = started + Duration::from_secs(10);
    let asked = loop {
        match api.accept() {
            Ok((mut stream, _)) => {
                let elapsed = started.elapsed();
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut head = [0u8; NEXT.len()];
                stream.read_exact(&mut head)?;
                if &head[..] != NEXT.as_bytes() {
                    bail!("{}: first request was not /next", binary.display());
                }
                break elapsed;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    let mut log = String::new();
                    if let Some(mut err) = child.stderr.take() {
                        let _ = err.read_to_string(&mut log);
                    }
                    bail!(
                        "{} exited ({status}) before asking for an event:\n{log}",
                        binary.display()
                    );
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("{} did not ask for an event within 10 s", binary.display());
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(asked)
}

/// The deflate size of the bootstrap as Lambda's zip holds it (`zip -9`).
fn zipped_size(bootstrap: &Path) -> anyhow::Result<String> {
    let dir = tempdir()?;
    let zip = dir.join("bootstrap.zip");
    let status = Command::new("zip")
        .arg("-q9j")
        .arg(&zip)
        .arg(bootstrap)
        .status();
    let size = match status {
        Ok(s) if s.success() => std::fs::metadata(&zip)?.len().to_string(),
        _ => "-".to_owned(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(size)
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("init-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
