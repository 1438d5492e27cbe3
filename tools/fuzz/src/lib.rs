//! A self-contained mutation fuzzer on stable Rust for the parsers that face the internet.
//!
//! Each [`Target`] feeds bytes to the real library functions and asserts what must hold beyond
//! "no panic". The engine mutates a seed corpus (the repository's events and fixtures) byte by
//! byte and structurally (JSON values replaced, duplicated, nested, dropped), keeps inputs that
//! show a behaviour not seen before, and counts executions. Everything follows from one seed:
//! the same seed and execution count replay the same inputs, so even an abort (which no
//! `catch_unwind` sees) can be reproduced; a caught panic also saves its input to a file.

pub mod mutate;
pub mod targets;

use std::collections::HashSet;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// One parser under test.
pub trait Target: Send {
    /// The name on the command line and in reports.
    fn name(&self) -> &'static str;
    /// Real-shaped inputs to start from.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Tokens worth splicing in (keys, keywords, edge values).
    fn dictionary(&self) -> &'static [&'static str];
    /// Runs the parser on `input`, panicking when a property is broken; returns a coarse
    /// signature of what it did, so inputs with new behaviour join the corpus.
    fn check(&mut self, input: &[u8]) -> u64;
}

/// A deterministic generator (SplitMix64): small, fast, and replayable from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that always yields the same sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// True with probability 1 / `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// How long a campaign runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop after this long.
    pub time: Option<Duration>,
    /// Stop after this many executions.
    pub runs: Option<u64>,
}

/// What a campaign did.
#[derive(Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// The seed it ran from.
    pub seed: u64,
    /// Inputs run, seeds included.
    pub executions: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Corpus size at the end (seeds plus inputs that showed new behaviour).
    pub corpus: usize,
    /// The crash, when one was found (the campaign stops at the first).
    pub crash: Option<Crash>,
}

/// A broken property or a panic, with the input that caused it.
#[derive(Debug)]
pub struct Crash {
    /// The execution (1-based) that failed: replay with the same seed and this many runs.
    pub execution: u64,
    /// The panic message.
    pub message: String,
    /// Where the input was saved.
    pub saved: Option<PathBuf>,
}

/// Most inputs kept beside the seeds; past it the corpus stops growing.
const MAX_CORPUS: usize = 4096;
/// Largest input the mutator produces (the webhook refuses bodies over 3 MiB anyway).
const MAX_INPUT: usize = 64 * 1024;

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static QUIET_HOOK: Once = Once::new();
thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that, on fuzzing threads, records the message instead of printing
/// it, and leaves every other thread's panics as they were.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(std::cell::Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned());
                if let Ok(mut last) = LAST_PANIC.lock() {
                    *last = Some(format!("{payload}{location}"));
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `target` from `seed` within `budget`; a crash's input is saved under `crash_dir`.
pub fn run(target: &mut dyn Target, seed: u64, budget: Budget, crash_dir: &Path) -> Report {
    install_quiet_hook();
    FUZZING.with(|f| f.set(true));
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> = target.seeds();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let dictionary = target.dictionary();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut executions = 0_u64;
    let mut crash = None;
    let mut next_seed = 0;
    loop {
        if budget.runs.is_some_and(|runs| executions >= runs) {
            break;
        }
        if executions.is_multiple_of(256) && budget.time.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        // The seeds first, as they are; then mutations of the corpus.
        let input = if next_seed < corpus.len() {
            next_seed += 1;
            corpus[next_seed - 1].clone()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            mutate::mutate(&mut rng, base, other, dictionary, MAX_INPUT)
        };
        executions += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| target.check(&input))) {
            Ok(signature) => {
                if seen.insert(signature) && corpus.len() < MAX_CORPUS && next_seed >= corpus.len()
                {
                    corpus.push(input);
                    next_seed = corpus.len();
                }
            }
            Err(_) => {
                let message = LAST_PANIC
                    .lock()
                    .ok()
                    .and_then(|mut m| m.take())
                    .unwrap_or_else(|| "(panic without a message)".to_owned());
                let saved = save(crash_dir, target.name(), &input);
                crash = Some(Crash {
                    execution: executions,
                    message,
                    saved,
                });
                break;
            }
        }
    }
    FUZZING.with(|f| f.set(false));
    Report {
        target: target.name(),
        seed,
        executions,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        crash,
    }
}

/// Runs `target` once on `input` with panics reported as usual (for replaying a saved crash).
pub fn replay(target: &mut dyn Target, input: &[u8]) -> u64 {
    target.check(input)
}

fn save(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let digest = shared::crypto::sha256_hex(&[input]);
    let path = dir.join(format!("{target}-{}.bin", &digest[..16]));
    let mut file = std::fs::File::create(&path).ok()?;
    file.write_all(input).ok()?;
    Some(path)
}

/// A 64-bit FNV-1a hash, for behaviour signatures.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The repository's root (the fuzz crate sits at `tools/fuzz`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parser with a planted bug: it "panics" on inputs holding `BUG`.
    struct Planted;

    impl Target for Planted {
        fn name(&self) -> &'static str {
            "planted"
        }
        fn seeds(&self) -> Vec<Vec<u8>> {
            vec![b"{\"a\":\"BU\"}".to_vec()]
        }
        fn dictionary(&self) -> &'static [&'static str] {
            &["G", "BUG"]
        }
        fn check(&mut self, input: &[u8]) -> u64 {
            assert!(
                !input.windows(3).any(|w| w == b"BUG"),
                "the planted bug was reached"
            );
            fnv(&[&input[..input.len().min(2)]])
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_planted_bug_is_found_saved_and_replayable_from_its_seed() {
        let dir = scratch("planted");
        let budget = Budget {
            time: None,
            runs: Some(1_000_000),
        };
        let report = run(&mut Planted, 7, budget, &dir);
        let crash = report.crash.expect("the planted bug is found");
        assert!(crash.message.contains("the planted bug was reached"));
        let saved = std::fs::read(crash.saved.expect("saved")).expect("readable");
        assert!(saved.windows(3).any(|w| w == b"BUG"));
        // The same seed reaches the same input at the same execution.
        let again = run(&mut Planted, 7, budget, &scratch("planted-again"));
        assert_eq!(again.crash.map(|c| c.execution), Some(crash.execution));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_stops_at_its_execution_budget_and_counts_every_input() {
        struct Count(u64);
        impl Target for Count {
            fn name(&self) -> &'static str {
                "count"
            }
            fn seeds(&self) -> Vec<Vec<u8>> {
                vec![b"seed".to_vec()]
            }
            fn dictionary(&self) -> &'static [&'static str] {
                &[]
            }
            fn check(&mut self, _: &[u8]) -> u64 {
                self.0 += 1;
                0
            }
        }
        let mut target = Count(0);
        let budget = Budget {
            time: None,
            runs: Some(5_000),
        };
        let report = run(&mut target, 1, budget, &scratch("count"));
        assert_eq!((report.executions, target.0), (5_000, 5_000));
        assert!(report.crash.is_none());
    }
}
