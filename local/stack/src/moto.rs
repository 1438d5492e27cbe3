//! moto in server mode on loopback: found in the project's `.venv` (installed there when missing).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The workspace root (where `template.yaml` and `.venv` live).
pub fn workspace_root() -> PathBuf {
    // This crate lives in `local/stack`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// How long moto (a Python server) may take to answer: a few seconds on a quiet machine, far
/// more on one busy compiling.
const START_TIMEOUT: Duration = Duration::from_secs(60);
impl Moto {
    /// Uses the moto at `endpoint` if one answers there.
    pub async fn existing(endpoint: &str) -> Option<Self> {
        ready(endpoint).await.then(|| Self {
            endpoint: endpoint.to_owned(),
        })
    }

    /// Starts moto on `port` (0 picks a free one); it stops when this process exits.
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let binary = ensure_installed().await?;
        let port = if port == 0 { free_port()? } else { port };
        spawn_watched(&binary, port)?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if ready(&endpoint).await {
                return Ok(Self { endpoint });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("moto did not answer on {endpoint} within {START_TIMEOUT:?}")
    }
}

/// Starts moto for a test process without an async runtime (it outlives any one test's runtime)
/// and returns its endpoint; it stops when this process exits.
pub fn start_for_process() -> anyhow::Result<String> {
    let binary = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(ensure_installed())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("installing moto panicked"))?
    })?;
    let port = free_port()?;
    spawn_watched(&binary, port)?;
    let started = std::time::Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("moto did not answer on port {port} within {START_TIMEOUT:?}")
}

/// Runs moto under a small shell that stops it once this process is gone, however it ends
/// (a killed test binary included). A `moto_server` of a virtualenv runs as the tuned server of
/// `local/stack/moto/server.py` (see there) with that virtualenv's Python.
fn spawn_watched(binary: &Path, port: u16) -> anyhow::Result<()> {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("moto-watchdog")
        .arg(port.to_string())
        .arg(std::process::id().to_string());
    let python = binary.with_file_name("python");
    let tuned = workspace_root().join("local/stack/moto/server.py");
    if python.exists() && tuned.exists() {
        command.arg(python).arg(tuned);
    } else {
        command.arg(binary);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(())
}

/// Runs moto (`$3…`) on port `$1` until process `$2` exits.
const WATCHDOG: &str = r#"port=$1; pid=$2; shift 2; trap 'kill $m 2>/dev/null' EXIT INT TERM; "$@" -H 127.0.0.1 -p "$port" & m=$!; while kill -0 "$pid" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done"#;

async fn ready(endpoint: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build();
    match client {
        Ok(client) => client
            .get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Finds `moto_server` (`MOTO_SERVER`, the project's `.venv`, then `PATH`), installing moto into
/// `.venv` when none is found.
pub async fn ensure_installed() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return Ok(path.into());
    }
    let venv = workspace_root().join(".venv");
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        return Ok(in_venv);
    }
    if let Some(on_path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    }) {
        return Ok(on_path);
    }
    eprintln!(
        "moto not found: installing moto[server] into {} (about a minute)",
        venv.display()
    );
    let status = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .await?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "moto[server]==5.2.5"])
        .status()
        .await?;
    if !status.success() {
        bail!("pip install moto[server] failed");
    }
    Ok(in_venv)
}
