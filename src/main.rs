//! `twinrig`: run scenarios, validate them, replay traces.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use twinrig::devices;
use twinrig::report::{ScenarioReport, Summary};
use twinrig::suite::{self, LoadError, golden_path, slug};
use twinrig_sim::{MILLIS, Trace};

#[derive(Parser)]
#[command(
    name = "twinrig",
    version,
    about = "Simulation and digital-twin test harness for AWS-IoT robots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (or every scenario under a directory).
    Run {
        /// Scenario files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write a JSON summary here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write JUnit XML here (one test case per scenario).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write each scenario's MCAP trace into this directory.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write each scenario's records store (SQLite) into this directory.
        #[arg(long)]
        records: Option<PathBuf>,
        /// No progress bars (CI logs).
        #[arg(long)]
        quiet: bool,
        /// Run with this seed instead of each scenario's own (to reproduce
        /// a seed `twinrig sweep` reported).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Check scenario files without running them.
    Validate {
        /// Scenario files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the device kinds this build can simulate.
    List,
    /// Print the scenario JSON Schema.
    Schema,
    /// Write a small scenario folder that runs green at once: an example per
    /// robot kind, the JSON Schema for editors, a README.
    Init {
        /// Where (created if missing; existing files are never overwritten).
        #[arg(default_value = "twinrig-scenarios")]
        dir: PathBuf,
    },
    /// Write credentials for the live cloud twin: a local root CA (it plays
    /// Amazon Root CA 1), the endpoint's server certificate, and per thing a
    /// key pair and a certificate attached to it (as CreateKeysAndCertificate),
    /// with an endpoint file and the certificate registry.
    Certs(twinrig::certs::CertsArgs),
    /// Write the firmware images a fleet file publishes, byte for byte as
    /// `serve cloud --fleet` serves them: `{type}-{version}.bin`, what a
    /// device is provisioned with at the factory (`ota-agent --factory-image`).
    Firmware {
        /// The fleet file (default: the built-in fleets/default.yaml).
        #[arg(long, value_name = "FILE")]
        fleet: Option<PathBuf>,
        /// Where (created if missing; an existing file is never overwritten).
        #[arg(long, default_value = "twinrig-firmware")]
        out: PathBuf,
    },
    /// Print a shell completion script (e.g. `twinrig completions bash > ~/.local/share/bash-completion/completions/twinrig`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Re-run the scenario recorded in a trace and report the first divergence.
    Replay {
        /// An MCAP trace written by `twinrig run --trace` or `twinrig record`.
        trace: PathBuf,
    },
    /// List records from a store written by `twinrig run --records DIR`, newest first, as JSON lines.
    Records {
        /// A `.sqlite` file written by `run --records`.
        store: PathBuf,
        /// Only this record kind (e.g. RvrTelemetry, HandState).
        #[arg(long)]
        kind: Option<String>,
        /// Only this device (the record key).
        #[arg(long)]
        device: Option<String>,
        /// At most this many (newest first).
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Print a trace's records, one per line: virtual time, channel, JSON.
    Trace {
        /// An MCAP trace.
        trace: PathBuf,
        /// Only this channel (e.g. /mqtt, /uart, /physics, /faults, /assertions).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Check (or with --update, rewrite) the golden traces of the shipped scenarios.
    Record {
        /// Rewrite the golden traces instead of checking them.
        #[arg(long)]
        update: bool,
        /// The scenarios directory.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// Where golden traces live.
        #[arg(long, default_value = "tests/replays")]
        replays: PathBuf,
    },
    /// Run an operator prompt against a fleet in virtual time: the tool calls it
    /// made, the rollout with a progress bar, the job result and the fleet status.
    /// Exit 0 when it completed, 1 when the job failed or aborted, 2 for bad
    /// input, 3 when the prompt was not understood (nothing is done then).
    Ota(twinrig::ota_cli::OtaArgs),
    /// Run scenarios under many seeds, in parallel: pass rate, failing
    /// seeds (with the command that reproduces each, and their traces),
    /// and the distribution of every figure the runs measured.
    Sweep(twinrig::sweep_cli::SweepArgs),
    /// Serve a simulated robot live (wall clock) on a pseudo-terminal, for host
    /// programs that speak its protocol over a serial port; or `cloud`: the
    /// cloud twin (broker, shadows, jobs) for MQTT clients outside the process.
    Serve {
        /// What to serve: a device kind that can be served (`twinrig list`
        /// names them): rvr (the RVR on its UART) or hand (the Amazing Hand's
        /// 8-servo SCS bus, for rustypot or another host driver); or `cloud`.
        robot: String,
        /// Serve on a pseudo-terminal; its device path is printed on stdout.
        #[arg(long)]
        pty: bool,
        /// Baud rate of the simulated UART (default: the robot's own, 115200
        /// for rvr, 1000000 for hand).
        #[arg(long)]
        baud: Option<u32>,
        /// Stop after this long (seconds, or with units: 90s, 2m); default: until Ctrl-C.
        #[arg(long, value_parser = twinrig::serve::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Write every packet both ways (time, direction, hex, decoded) to this file.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// `serve cloud`: MQTT 3.1.1 on plain TCP at this address, e.g.
        /// 127.0.0.1:1883 (no TLS, no client certificates: local tools only;
        /// port 0 picks a free port, printed when ready).
        #[arg(long, value_name = "ADDR")]
        insecure_tcp: Option<std::net::SocketAddr>,
        /// `serve cloud`: serve MQTT over TLS with client certificates, with
        /// the identity and things of this `twinrig certs` folder.
        #[arg(long, value_name = "DIR")]
        certs: Option<PathBuf>,
        /// `serve cloud --certs`: where the TLS listener binds (AWS IoT's
        /// port 8883 on loopback by default; port 0 picks a free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8883")]
        mqtt: std::net::SocketAddr,
        /// `serve cloud --certs`: the AWS IoT policy document attached to
        /// every certificate (default: a thing connects as itself and uses
        /// only topics with its name as a level).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// `serve cloud`: serve the iot-data HTTP API (GetThingShadow,
        /// UpdateThingShadow, Publish) at this address, e.g. 127.0.0.1:8443.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// `serve cloud --certs`: the same HTTP APIs over TLS at this address
        /// (the endpoint's certificate; clients trust the folder's root-ca.pem).
        #[arg(long, value_name = "ADDR")]
        https: Option<std::net::SocketAddr>,
        /// `serve cloud --http`: the access key whose SigV4 signatures it
        /// accepts, as ACCESS_KEY_ID:SECRET (default: twinrig:twinrig-local-secret).
        #[arg(long, value_name = "ID:SECRET")]
        aws_credentials: Option<String>,
        /// `serve cloud`: start with this fleet file's things, types, groups,
        /// firmware and OTA gates (the `fleet:` section `twinrig ota` runs).
        #[arg(long, value_name = "FILE")]
        fleet: Option<PathBuf>,
        /// `serve cloud`: keep shadows, jobs, things, certificates and policies in
        /// DIR/state.json across restarts (read at start, written at stop).
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// `serve cloud`: start with this scenario's `fleet:` and run its `cloud.rules`
        /// (its devices and steps are not run: the clients are the devices).
        #[arg(long, value_name = "FILE", conflicts_with = "fleet")]
        scenario: Option<PathBuf>,
    },
}

/// `--version`: twinrig's and every device crate's version.
fn long_version() -> String {
    let mut lines = vec![env!("CARGO_PKG_VERSION").to_owned()];
    for k in devices::kinds() {
        let (name, version) = k.firmware();
        lines.push(format!("{name} {version} (device kind `{}`)", k.name()));
    }
    lines.push(format!(
        "ota-client {} (fleet devices)",
        ota_client::VERSION
    ));
    lines.join("\n")
}

fn main() -> ExitCode {
    // The long version is built at run time (it lists the device kinds);
    // clap keeps a `&'static str` without its `string` feature, and this runs once.
    let command = Cli::command().long_version(&*long_version().leak());
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Run {
            paths,
            json,
            junit,
            trace,
            records,
            quiet,
            seed,
        } => run(&paths, json, junit, trace, records, quiet, seed),
        Command::Records {
            store,
            kind,
            device,
            last,
        } => list_records(&store, kind.as_deref(), device.as_deref(), last),
        Command::Validate { paths } => validate(&paths),
        Command::Sweep(args) => return ExitCode::from(twinrig::sweep_cli::command(&args)),
        Command::Ota(args) => {
            return ExitCode::from(match &args.endpoint {
                None => twinrig::ota_cli::command(&args),
                #[cfg(feature = "aws")]
                Some(endpoint) => twinrig::ota_remote::command(&args, endpoint),
                #[cfg(not(feature = "aws"))]
                Some(_) => {
                    eprintln!(
                        "error: --endpoint runs the fleet tools over the AWS SDK, which this \
                         twinrig was built without: build it with `cargo build --features aws`"
                    );
                    2
                }
            });
        }
        Command::List => {
            let width = devices::kinds()
                .iter()
                .map(|k| k.name().len())
                .max()
                .unwrap_or(0);
            for k in devices::kinds() {
                let (crate_name, version) = k.firmware();
                println!(
                    "{:<width$} {crate_name} {version}: {}",
                    k.name(),
                    k.summary()
                );
            }
            println!(
                "served live on a pty (`twinrig serve KIND --pty`): {}",
                twinrig::serve::ServeRobot::names().join(", ")
            );
            Ok(true)
        }
        Command::Schema => {
            print!("{}", twinrig::scenario::scenario_schema_json());
            Ok(true)
        }
        Command::Init { dir } => twinrig::init::write(&dir)
            .map(|written| {
                for p in &written {
                    println!("wrote {}", p.display());
                }
                println!("run them: twinrig run {}", dir.display());
                true
            })
            .map_err(|e| e.to_string()),
        Command::Certs(args) => twinrig::certs::run(&args)
            .map(|written| {
                for p in &written {
                    println!("wrote {}", p.display());
                }
                true
            })
            .map_err(|e| e.to_string()),
        Command::Firmware { fleet, out } => {
            twinrig::ota_cli::write_firmware(fleet.as_deref(), &out).map(|written| {
                for (path, len, sha) in &written {
                    println!("wrote {} ({len} bytes, sha256 {sha})", path.display());
                }
                true
            })
        }
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails
            // (`| head`); a closed pipe here is the reader's choice, not an error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "twinrig", &mut script);
            use std::io::Write as _;
            match std::io::stdout().write_all(&script) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
                Err(e) => Err(format!("cannot write the completion script: {e}")),
            }
        }
        Command::Replay { trace } => replay(&trace),
        Command::Trace { trace, channel } => read_trace(&trace).map(|t| {
            for (name, values) in &t.metadata {
                for (k, v) in values {
                    let first = v.lines().next().unwrap_or("");
                    println!(
                        "# {name}.{k} = {first}{}",
                        if v.lines().count() > 1 { " ..." } else { "" }
                    );
                }
            }
            for r in t
                .records
                .iter()
                .filter(|r| channel.as_deref().is_none_or(|c| r.channel == c))
            {
                println!(
                    "{} {} {}",
                    twinrig_sim::format_nanos(r.time),
                    r.channel,
                    r.data
                );
            }
            true
        }),
        Command::Record {
            update,
            scenarios,
            replays,
        } => record(update, &scenarios, &replays),
        Command::Serve {
            robot,
            insecure_tcp,
            certs,
            mqtt,
            policy,
            http,
            https,
            aws_credentials,
            fleet,
            state,
            scenario,
            duration,
            pty,
            baud,
            log,
        } if robot == "cloud" => serve_cloud(
            insecure_tcp,
            certs.map(|dir| (mqtt, dir)),
            policy,
            HttpListeners {
                http,
                https,
                aws_credentials,
            },
            CloudSources {
                fleet,
                state,
                scenario,
            },
            duration,
            pty || baud.is_some() || log.is_some(),
        ),
        Command::Serve {
            robot,
            pty,
            baud,
            duration,
            log,
            ..
        } => {
            use std::sync::Arc;
            use std::sync::atomic::{AtomicBool, Ordering};
            use twinrig::serve::{self, ServeError, ServeOptions, ServeRobot};
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            robot
                .parse::<ServeRobot>()
                .and_then(|robot| {
                    if pty {
                        Ok(robot)
                    } else {
                        Err(ServeError::NoTransport)
                    }
                })
                .map_err(|e| e.to_string())
                .and_then(|robot| {
                    // SIGINT, SIGTERM and SIGHUP end the serve loop cleanly (ctrlc's
                    // `termination` feature); ctrlc is already in the build via bevy_app.
                    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
                    let defaults = ServeOptions::for_robot(robot);
                    let options = ServeOptions {
                        baud: baud.unwrap_or(defaults.baud),
                        duration,
                        log,
                        ..defaults
                    };
                    let banner = options.clone();
                    let summary = serve::serve_robot_pty(robot, options, &stop, |path| {
                        println!("{}", banner.ready_line(robot, path));
                    })
                    .map_err(|e| e.to_string())?;
                    println!("{summary}");
                    Ok(true)
                })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `serve cloud`'s HTTP APIs: where, and whose signatures they take.
struct HttpListeners {
    http: Option<std::net::SocketAddr>,
    https: Option<std::net::SocketAddr>,
    aws_credentials: Option<String>,
}

/// What `serve cloud` starts from: a fleet file or a scenario, and a state folder.
struct CloudSources {
    fleet: Option<PathBuf>,
    state: Option<PathBuf>,
    scenario: Option<PathBuf>,
}

/// `twinrig serve cloud`.
fn serve_cloud(
    insecure_tcp: Option<std::net::SocketAddr>,
    tls: Option<(std::net::SocketAddr, PathBuf)>,
    policy: Option<PathBuf>,
    http: HttpListeners,
    sources: CloudSources,
    duration: Option<std::time::Duration>,
    serial_options: bool,
) -> Result<bool, String> {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use twinrig::serve::cloud::{CloudServeOptions, serve_cloud};
    if serial_options {
        return Err(
            "--pty, --baud and --log are for robots; `serve cloud` takes --certs DIR and --insecure-tcp ADDR"
                .into(),
        );
    }
    if insecure_tcp.is_none() && tls.is_none() && http.http.is_none() && http.https.is_none() {
        return Err(
            "`serve cloud` needs a listener: --certs DIR (MQTT over TLS with client certificates, \
             made by `twinrig certs`; --mqtt ADDR, default 127.0.0.1:8883) and/or --insecure-tcp \
             ADDR (plain MQTT, e.g. 127.0.0.1:1883)"
                .into(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    if policy.is_some() && tls.is_none() {
        return Err("--policy applies to the TLS listener: give --certs DIR too".into());
    }
    let credentials = match http.aws_credentials.as_deref() {
        None => vec![twinrig::serve::cloud::default_credentials()],
        Some(text) => match text.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                vec![twinrig_cloud::sigv4::Credentials {
                    access_key_id: id.to_owned(),
                    secret_access_key: secret.to_owned(),
                }]
            }
            _ => return Err("--aws-credentials takes ACCESS_KEY_ID:SECRET".into()),
        },
    };
    let CloudSources {
        fleet,
        state,
        scenario,
    } = sources;
    let (fleet, rules) = match (fleet, scenario) {
        (Some(path), _) => (
            Some(
                twinrig::scenario::load_fleet_file(&path)
                    .map_err(|e| e.to_string())?
                    .fleet,
            ),
            Vec::new(),
        ),
        (None, Some(path)) => {
            let loaded = twinrig::suite::load(&path).map_err(|e| e.render_plain())?;
            (loaded.scenario.fleet, loaded.scenario.cloud.rules)
        }
        (None, None) => (None, Vec::new()),
    };
    let options = CloudServeOptions {
        fleet,
        state,
        rules,
        insecure_tcp,
        tls,
        policy,
        http: http.http,
        https: http.https,
        credentials,
        duration,
        seed: 0,
    };
    let summary = serve_cloud(&options, &stop, |endpoints| {
        println!("{}", endpoints.ready_line());
        // Tests and scripts wait for this line before connecting.
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(true)
}

fn print_load_error(e: LoadError) {
    // Snippets where lines are short enough, else `file:line:col: message`;
    // never a panic.
    eprintln!("{}", e.render());
}

/// Loads every file, printing each error; returns what loaded and how many failed.
fn load_all(paths: &[PathBuf]) -> Result<(Vec<suite::Loaded>, usize), String> {
    suite::load_all(paths, print_load_error)
}

fn run(
    paths: &[PathBuf],
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    trace_dir: Option<PathBuf>,
    records_dir: Option<PathBuf>,
    quiet: bool,
    seed: Option<u64>,
) -> Result<bool, String> {
    let (mut loaded, bad) = load_all(paths)?;
    if let Some(seed) = seed {
        for l in &mut loaded {
            l.scenario.seed = seed;
        }
    }
    for dir in trace_dir.iter().chain(&records_dir) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // A panic inside a device task is caught and reported with its scenario;
    // keep it from printing over the progress bars. Any other panic is printed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !twinrig_sim::executor::polling_task() {
            default_hook(info);
        }
    }));
    let bars = MultiProgress::new();
    if quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("{prefix:<32} [{bar:30}] {pos:>7}/{len:7} ms virtual {msg}")
            .expect("valid template")
            .progress_chars("=> ");
    // A bad file is rejected before anything runs.
    if bad > 0 {
        return Err(format!(
            "{bad} scenario file(s) failed to load; nothing was run"
        ));
    }
    // Outputs are named after scenarios; two with the same name must not
    // share (and overwrite) one file.
    let stems = twinrig::output::distinct_stems(loaded.iter().map(|l| l.scenario.name.as_str()));
    if trace_dir.is_some() || records_dir.is_some() {
        for (l, stem) in loaded.iter().zip(&stems) {
            if *stem != slug(&l.scenario.name) {
                eprintln!(
                    "note: another scenario is also named {:?}; the outputs of {} are named {stem}",
                    l.scenario.name,
                    l.path.display()
                );
            }
        }
    }
    let mut reports = Vec::new();
    for (l, stem) in loaded.into_iter().zip(stems) {
        let bar = bars.add(ProgressBar::new(l.scenario.duration_limit.nanos() / MILLIS));
        bar.set_style(style.clone());
        bar.set_prefix(l.scenario.name.clone());
        let b = bar.clone();
        // The trace streams to its file as the run goes (memory stays flat
        // however long the run); without --trace no trace is kept at all.
        let trace_path = trace_dir
            .as_ref()
            .map(|dir| dir.join(format!("{stem}.mcap")));
        let options = twinrig::runner::RunOptions {
            trace: match &trace_path {
                Some(p) => twinrig_sim::TraceOutput::File(p.clone()),
                None => twinrig_sim::TraceOutput::Discard,
            },
            ..Default::default()
        };
        let started = Instant::now();
        let outcome = suite::run_with(&l, &options, move |t| b.set_position(t / MILLIS));
        let wall = started.elapsed();
        bar.set_position(outcome.virtual_ns / MILLIS);
        bar.finish_with_message(if outcome.passed() { "pass" } else { "FAIL" });
        if let Some(e) = &outcome.trace_error {
            return Err(e.clone());
        }
        if let Some(dir) = &records_dir {
            let p = dir.join(format!("{stem}.sqlite"));
            write_records(&p, &outcome.records)?;
        }
        reports.push(ScenarioReport::new(
            l.path.clone(),
            &outcome,
            wall,
            trace_path,
        ));
    }
    let _ = std::panic::take_hook();
    let summary = Summary::new(reports);
    println!("{}", summary.table());
    if let Some(p) = json {
        twinrig::output::write_atomic(&p, summary.to_json().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    if let Some(p) = junit {
        twinrig::output::write_atomic(&p, summary.to_junit().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(summary.failed == 0)
}

fn validate(paths: &[PathBuf]) -> Result<bool, String> {
    let (loaded, bad) = load_all(paths)?;
    for l in &loaded {
        println!("ok: {} ({})", l.path.display(), l.scenario.name);
    }
    if bad > 0 {
        // Bad input, as for `run`: exit 2.
        return Err(format!("{bad} scenario file(s) failed to load"));
    }
    Ok(true)
}

fn read_trace(path: &Path) -> Result<Trace, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Trace::from_mcap(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn replay(path: &Path) -> Result<bool, String> {
    let expected = read_trace(path)?;
    let outcome = match suite::rerun_recorded(&expected, path) {
        Ok(o) => o,
        Err(e) => {
            print_load_error(e);
            return Err(format!(
                "{}: the recorded scenario does not load in this build",
                path.display()
            ));
        }
    };
    if let (Some(then), Some(now)) = (
        expected.metadata.get("versions"),
        outcome.trace.metadata.get("versions"),
    ) && then != now
    {
        println!("note: versions differ: recorded {then:?}, now {now:?}");
    }
    match expected.first_divergence(&outcome.trace) {
        None => {
            println!("identical ({} records)", expected.records.len());
            Ok(true)
        }
        Some(d) => {
            println!("{d}");
            Ok(false)
        }
    }
}

fn record(update: bool, scenarios: &Path, replays: &Path) -> Result<bool, String> {
    let (loaded, bad) = load_all(&[scenarios.to_owned()])?;
    if bad > 0 {
        return Err(format!(
            "{bad} scenario file(s) failed to load; no golden trace was checked or written"
        ));
    }
    let mut ok = true;
    for l in loaded {
        let f = l.path.clone();
        let outcome = suite::run(&l, |_| {});
        let golden = golden_path(scenarios, replays, &f);
        if update {
            if let Some(dir) = golden.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let bytes = outcome.trace.to_mcap().map_err(|e| e.to_string())?;
            twinrig::output::write_atomic(&golden, &bytes).map_err(|e| e.to_string())?;
            println!("wrote {}", golden.display());
        } else {
            match read_trace(&golden) {
                Err(e) => {
                    println!("{}: {e} (run `twinrig record --update`)", f.display());
                    ok = false;
                }
                Ok(expected) => match expected.first_divergence(&outcome.trace) {
                    None => println!("{}: identical", f.display()),
                    Some(d) => {
                        println!("{}: {d}", f.display());
                        ok = false;
                    }
                },
            }
        }
    }
    Ok(ok)
}

/// Writes a run's records to a fresh SQLite store at `path`.
fn write_records(path: &Path, records: &[twinrig_cloud::records::Record]) -> Result<(), String> {
    use twinrig_cloud::records::RecordStore;
    twinrig::output::write_with(path, |tmp| {
        // A stale temporary file from a killed run must not be appended to.
        let _ = std::fs::remove_file(tmp);
        let mut store = RecordStore::open(tmp).map_err(std::io::Error::other)?;
        for r in records {
            store.insert(r).map_err(std::io::Error::other)?;
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

fn list_records(
    path: &Path,
    kind: Option<&str>,
    device: Option<&str>,
    last: usize,
) -> Result<bool, String> {
    use twinrig_cloud::records::RecordStore;
    if !path.is_file() {
        return Err(format!("{}: no such records store", path.display()));
    }
    // Read-only: listing never creates tables in, or otherwise changes, the file.
    let store =
        RecordStore::open_read_only(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let kinds: Vec<String> = match kind {
        Some(k) => vec![k.to_string()],
        None => store
            .kinds()
            .map_err(|e| format!("{}: {e}", path.display()))?,
    };
    for k in kinds {
        let rows = match device {
            Some(d) => store.list_recent(&k, d, last),
            None => store.list_all(&k).map(|mut v| {
                v.reverse();
                v.truncate(last);
                v
            }),
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        for r in rows {
            let line = serde_json::json!({"kind": r.record.kind, "device": r.record.key, "ts": r.record.ts, "fields": r.record.fields});
            println!("{line}");
        }
    }
    Ok(true)
}
