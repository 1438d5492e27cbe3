//! `fuzz [--seconds N] [--runs N] [--seed N] [--out DIR] [TARGET...]`: runs each target (all by
//! default) for a bounded time or number of executions and prints what it did; exits 1 on a
//! crash. `fuzz replay TARGET FILE` runs one saved input with the panic shown; `fuzz list`
//! names the targets.

use fuzz::{Budget, Report, targets};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Lambda's tokio worker threads have 2 MiB stacks: a parser must not need more.
const STACK: usize = 2 * 1024 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(usage) => {
            eprintln!("{usage}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut out = std::io::stdout().lock();
    match args.first().map(String::as_str) {
        Some("list") => {
            for target in targets::all() {
                let _ = writeln!(out, "{}", target.name());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some("replay") => {
            let (Some(name), Some(file)) = (args.get(1), args.get(2)) else {
                return Err("usage: fuzz replay TARGET FILE".into());
            };
            let mut target = targets::by_name(name).ok_or(format!("no target {name}"))?;
            let input = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let handle = std::thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || fuzz::replay(target.as_mut(), &input))
                .map_err(|e| e.to_string())?;
            return Ok(match handle.join() {
                Ok(_) => {
                    let _ = writeln!(out, "{name}: the input passes every property");
                    ExitCode::SUCCESS
                }
                Err(_) => ExitCode::FAILURE,
            });
        }
        _ => {}
    }
    let mut budget = Budget {
        time: None,
        runs: None,
    };
    let mut seed = None;
    let mut crash_dir = PathBuf::from("target/fuzz-crashes");
    let mut names = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                let s: f64 = value()?.parse().map_err(|_| "--seconds N")?;
                budget.time = Some(Duration::from_secs_f64(s));
            }
            "--runs" => budget.runs = Some(value()?.parse().map_err(|_| "--runs N")?),
            "--seed" => seed = Some(parse_seed(value()?)?),
            "--out" => crash_dir = PathBuf::from(value()?),
            name if !name.starts_with('-') => names.push(name.to_owned()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if budget.time.is_none() && budget.runs.is_none() {
        budget.time = Some(Duration::from_secs(10));
    }
    let chosen: Vec<_> = if names.is_empty() {
        targets::all()
    } else {
        names
            .iter()
            .map(|n| targets::by_name(n).ok_or(format!("no target {n}")))
            .collect::<Result<_, _>>()?
    };
    let seed = seed.unwrap_or_else(|| {
        u64::from_str_radix(&shared::crypto::random_hex(8)[..16], 16).unwrap_or(1)
    });
    let mut failed = false;
    for mut target in chosen {
        let dir = crash_dir.clone();
        let report = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || fuzz::run(target.as_mut(), seed, budget, &dir))
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "the fuzz thread died".to_owned())?;
        failed |= report.crash.is_some();
        print(&mut out, &report);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("--seed {text}: a number (decimal or 0x hex)"))
}

fn print(out: &mut impl std::io::Write, report: &Report) {
    let secs = report.elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "{}: {} executions in {:.1} s ({:.0}/s), seed {:#018x}, corpus {}, crashes {}",
        report.target,
        report.executions,
        secs,
        report.executions as f64 / secs.max(1e-9),
        report.seed,
        report.corpus,
        u8::from(report.crash.is_some()),
    );
    if let Some(crash) = &report.crash {
        let _ = writeln!(
            out,
            "  CRASH at execution {}: {}\n  input: {}\n  replay: cargo run --bin fuzz -- replay {} {}\n  or: cargo run --bin fuzz -- --seed {:#x} --runs {} {}",
            crash.execution,
            crash.message,
            crash
                .saved
                .as_ref()
                .map_or("(not saved)".to_owned(), |p| p.display().to_string()),
            report.target,
            crash
                .saved
                .as_ref()
                .map_or("FILE".to_owned(), |p| p.display().to_string()),
            report.seed,
            crash.execution,
            report.target,
        );
    }
}
