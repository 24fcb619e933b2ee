//! `twinrig sweep`: the command line of [`crate::sweep`] (seed sweeps,
//! shards and their merge).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{distinct_stems, write_atomic};
use crate::suite;
use crate::sweep::{SeedRange, Shard, Sweep, sweep, write_trace};

/// Failing seeds per scenario whose traces are written (each is a re-run).
pub const TRACES_PER_SCENARIO: usize = 10;

/// `twinrig sweep` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The seeds: N (0 to N-1) or A..B (A to B-1).
    #[arg(long, required = true, value_parser = SeedRange::parse)]
    pub seeds: Option<SeedRange>,
    /// Runs at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run only shard K of N (K/N, 1-based): the seeds at positions K-1,
    /// K-1+N, ... of the range. Merge the shards' `--json` with `sweep merge`.
    #[arg(long, value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Write the results (every run's seed, verdict and figures, and the
    /// distributions) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here (a test case per seed).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where the traces of failing seeds go (the first 10 per scenario,
    /// each re-run with its trace written).
    #[arg(long, default_value = "sweep-failures")]
    pub failures: PathBuf,
    /// Shrink each scenario's first failing seed: fix its fault schedule,
    /// drop and shorten faults and drop steps while it still fails the same
    /// way, and write what is left as a scenario file into `--failures`.
    #[arg(long)]
    pub shrink: bool,
    /// No progress bar (CI logs).
    #[arg(long)]
    pub quiet: bool,
    /// `merge`: combine shards' JSON results.
    #[command(subcommand)]
    pub merge: Option<SweepCommand>,
}

/// `twinrig sweep merge`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SweepCommand {
    /// Combine the `--json` results of a sweep's shards into one.
    Merge {
        /// The shards' JSON files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where the merged JSON goes (default: printed).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Runs the command; the exit code (0 every run passed, 1 some failed, 2
/// bad input).
pub fn command(args: &SweepArgs) -> u8 {
    let result = match &args.merge {
        Some(SweepCommand::Merge { inputs, output }) => merge(inputs, output.as_ref()),
        None => run(args),
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn run(args: &SweepArgs) -> Result<bool, String> {
    let Some(seeds) = args.seeds else {
        return Err("--seeds N (or A..B) is required".into());
    };
    if args.jobs == Some(0) {
        return Err("--jobs must be at least 1".into());
    }
    let (loaded, bad) = suite::load_all(&args.paths, |e| eprintln!("{}", e.render()))?;
    if bad > 0 {
        return Err(format!(
            "{bad} scenario file(s) failed to load; nothing was run"
        ));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let per_scenario = match args.shard {
        Some(s) => s.seeds(seeds).count() as u64,
        None => seeds.len(),
    };
    let bar = ProgressBar::new(per_scenario * loaded.len() as u64);
    if args.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "sweep [{bar:30}] {pos}/{len} runs, {msg} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let failed = std::sync::atomic::AtomicUsize::new(0);
    bar.set_message("0 failed");
    // A panic inside a device task is caught and reported with its run;
    // keep it from printing over the progress bar.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !twinrig_sim::executor::polling_task() {
            default_hook(info);
        }
    }));
    let result = sweep(&loaded, seeds, args.shard, jobs, &|_, run| {
        if !run.passed {
            let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    });
    bar.finish();
    let _ = std::panic::take_hook();
    print!("{}", result.table());
    write_failing_traces(&loaded, &result, &args.failures)?;
    if args.shrink {
        shrink_first_failures(&loaded, &result, &args.failures)?;
    }
    if let Some(p) = &args.json {
        write_atomic(p, result.to_json().as_bytes()).map_err(|e| e.to_string())?;
    }
    if let Some(p) = &args.junit {
        write_atomic(p, result.to_junit().as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(result.failed() == 0)
}

/// Re-runs the first failing seeds of each scenario with their traces
/// written (`{failures}/{scenario}-seed-{S}.mcap`).
fn write_failing_traces(
    loaded: &[suite::Loaded],
    result: &Sweep,
    dir: &std::path::Path,
) -> Result<(), String> {
    if result.failed() == 0 {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stems = distinct_stems(loaded.iter().map(|l| l.scenario.name.as_str()));
    for ((l, s), stem) in loaded.iter().zip(&result.scenarios).zip(stems) {
        for seed in s.failing_seeds.iter().take(TRACES_PER_SCENARIO) {
            let path = dir.join(format!("{stem}-seed-{seed}.mcap"));
            write_trace(l, *seed, &path)?;
            println!("trace of seed {seed}: {}", path.display());
        }
    }
    Ok(())
}

/// Shrinks the first failing seed of each scenario and writes the result
/// (`{failures}/{scenario}-seed-{S}-shrunk.yaml`).
fn shrink_first_failures(
    loaded: &[suite::Loaded],
    result: &Sweep,
    dir: &std::path::Path,
) -> Result<(), String> {
    let stems = distinct_stems(loaded.iter().map(|l| l.scenario.name.as_str()));
    for ((l, s), stem) in loaded.iter().zip(&result.scenarios).zip(stems) {
        let Some(seed) = s.failing_seeds.first() else {
            continue;
        };
        let shrunk = crate::shrink::shrink(l, *seed, crate::shrink::DEFAULT_BUDGET)?;
        let path = dir.join(format!("{stem}-seed-{seed}-shrunk.yaml"));
        write_atomic(&path, shrunk.yaml.as_bytes()).map_err(|e| e.to_string())?;
        println!(
            "shrunk seed {seed} in {} runs: {} fault(s) -> {}, {} step(s) -> {}: {}\n  fails with: {}",
            shrunk.runs,
            shrunk.faults.0,
            shrunk.faults.1,
            shrunk.steps.0,
            shrunk.steps.1,
            path.display(),
            shrunk.failure
        );
    }
    Ok(())
}

fn merge(inputs: &[PathBuf], output: Option<&PathBuf>) -> Result<bool, String> {
    let mut parts = Vec::new();
    for p in inputs {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let part: Sweep = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a sweep's JSON: {e}", p.display()))?;
        parts.push(part);
    }
    let merged = Sweep::merge(parts)?;
    match output {
        Some(p) => {
            write_atomic(p, merged.to_json().as_bytes()).map_err(|e| e.to_string())?;
            print!("{}", merged.table());
        }
        None => println!("{}", merged.to_json()),
    }
    Ok(merged.failed() == 0)
}
