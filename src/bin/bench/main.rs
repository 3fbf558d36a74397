//! Benchmarks; every figure comes from a command anyone can rerun.
//!
//! - `bench list`: pages of the request list API at 10k, 100k and 1M requests
//!   (in-process server; see `list.rs`).
//! - `bench ack`: the real release server as a child process, pinned to CPU 0,
//!   driven with signed Slack traffic from this process, pinned to CPU 1: ack
//!   latency of `/access request` and of Approve clicks at fixed offered rates
//!   (open loop, latency from the scheduled send time) and at saturation (closed
//!   loop); the ceiling (a bare axum handler that only verifies the signature);
//!   the Slack Bolt for Python peer (`bench/bolt_peer/`); server memory.
//! - `bench fanout`: a group step of 1,000 members, one deciding click: time to
//!   commit every `chat.update` intent, then delivery under Tier-3-like pacing.
//! - `bench all`: `ack` and `fanout`. `--quick` shortens every run.
//!
//! PostgreSQL runs when `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` names a
//! server (a fresh database is created there and dropped at the end).
//!
//! ```text
//! scripts/bench.sh                      # build release, Bolt venv, bench all --quick
//! /tmp/accessbot-target/release/bench all          # the full run
//! ```

#![forbid(unsafe_code)]

/// Progress on stderr, stamped with the seconds since the bench started.
macro_rules! note {
    ($($t:tt)*) => { eprintln!("[{:>6.1}s] {}", $crate::elapsed(), format!($($t)*)) };
}

mod ack;
mod ceiling;
mod db;
mod fake_slack;
mod fanout;
mod list;
mod load;
mod procs;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::db::BackendChoice;

#[derive(Parser)]
#[command(name = "bench", about = "accessbot benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List API pages (filtered, deep cursor, first page) at growing table sizes.
    List(list::ListArgs),
    /// Ack latency and throughput, the signature-only ceiling, the Bolt peer, memory.
    Ack(BenchArgs),
    /// Group fan-out: one click on a 1,000-member group step, then paced delivery.
    Fanout(BenchArgs),
    /// Everything but `list`: `ack` then `fanout`.
    All(BenchArgs),
    /// (internal) The ceiling: a bare axum app that verifies signatures and answers 200.
    #[command(hide = true)]
    CeilingServer {
        #[arg(long)]
        port: u16,
    },
}

/// Options of `ack`, `fanout` and `all` (each uses the ones that concern it).
#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Shorter runs: 5 s per rate, quicker pacing window.
    #[arg(long)]
    pub quick: bool,
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub backend: BackendChoice,
    /// The accessbot binary [default: `accessbot` next to this binary].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Offered rates of the open-loop runs, req/s.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000")]
    pub rates: Vec<u32>,
    /// Length of each timed run [default: 10s, --quick 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrent connections of the closed-loop (saturation) runs.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Distinct requesters the commands cycle through (the server limits request creation per user).
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Members of the group step in the fan-out bench.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// The fake Slack's pacing per Web API method in the fan-out bench and the paced ack runs, `N/WINDOW`.
    /// Real Tier 3 is `50/60s` (1,000 updates: 20 min); [default: 50/2s (30× faster),
    /// --quick 100/1s (1,000 updates in 10 windows)].
    #[arg(long)]
    pub pace: Option<String>,
    /// The Python venv holding the Bolt peer's requirements
    /// [default: `bolt-venv` in the cargo target dir, where scripts/bench.sh puts it].
    #[arg(long)]
    pub peer_venv: Option<PathBuf>,
    /// The Bolt peer app [default: bench/bolt_peer in the source tree].
    #[arg(long)]
    pub peer_dir: Option<PathBuf>,
    /// gunicorn worker processes and threads per worker for the peer.
    #[arg(long, default_value_t = 3)]
    pub peer_workers: usize,
    #[arg(long, default_value_t = 4)]
    pub peer_threads: usize,
    /// Skip the Bolt peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Skip the signature-only ceiling.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Record a CPU profile of the server (`perf record -e cpu-clock --call-graph dwarf`)
    /// during each saturation run into this directory, and print its top entries.
    #[arg(long)]
    pub perf_dir: Option<PathBuf>,
    /// Diagnosis: the fake Slack holds every Web API call for 60 s (the server's client gives
    /// up after 10 s), so the outbox all but stops and `ack` measures the request path alone.
    #[arg(long)]
    pub stall_outbox: bool,
    /// Do not pin processes to CPUs (the default pins the server to CPU 0, this process to CPU 1).
    #[arg(long)]
    pub no_pin: bool,
}

impl BenchArgs {
    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or(if self.quick { Duration::from_secs(5) } else { Duration::from_secs(10) })
    }

    /// The pacing window, parsed (`None`: `off`).
    pub fn pace(&self) -> anyhow::Result<Option<(u32, Duration)>> {
        let text = self.pace.clone().unwrap_or_else(|| if self.quick { "100/1s" } else { "50/2s" }.to_string());
        accessbot::workflow::ratelimit::parse(&text).map_err(|e| anyhow::anyhow!("--pace: {e}"))
    }

    pub fn server_bin(&self) -> anyhow::Result<PathBuf> {
        let bin = match &self.server_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.parent().context("no directory for this binary")?.join("accessbot"),
        };
        anyhow::ensure!(
            bin.exists(),
            "{} not found: build it first (cargo build --release --bins) or pass --server-bin",
            bin.display()
        );
        Ok(bin)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,sqlx=error".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    elapsed();
    match Cli::parse().command {
        Command::List(args) => list::list_bench(args).await,
        Command::Ack(args) => {
            let env = Machine::setup(&args)?;
            let report = ack::run(&args, &env).await?;
            report.print_goals(&env, args.connections);
            Ok(())
        }
        Command::Fanout(args) => {
            let env = Machine::setup(&args)?;
            let fan = fanout::run(&args, &env).await?;
            println!();
            println!("goals ({})", env.describe());
            fanout::print_goals(&fan);
            Ok(())
        }
        Command::All(args) => {
            let env = Machine::setup(&args)?;
            let started = std::time::Instant::now();
            let report = ack::run(&args, &env).await?;
            let fan = fanout::run(&args, &env).await?;
            println!();
            println!("==== summary ({}, {:.0} s in all) ====", env.describe(), started.elapsed().as_secs_f64());
            report.print_goals(&env, args.connections);
            fanout::print_goals(&fan);
            Ok(())
        }
        Command::CeilingServer { port } => ceiling::serve(port).await,
    }
}

/// What every table names: the machine, the date, the builds, the pinning.
pub struct Machine {
    pub started: DateTime<Utc>,
    /// `nproc` (all cores, before this process pinned itself).
    pub cores: String,
    pub bench_profile: &'static str,
    /// The accessbot binary measured, and the copy that runs (likewise this binary, for the ceiling).
    pub server_src: PathBuf,
    pub server_bin: PathBuf,
    pub bench_bin: PathBuf,
    /// Whether children are started under `taskset -c 0`.
    pub pin: bool,
    /// How this process and the server are placed, as printed.
    pub placement: String,
    _bin_dir: procs::WorkDir,
}

impl Machine {
    fn setup(args: &BenchArgs) -> anyhow::Result<Machine> {
        let cores = std::process::Command::new("nproc")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map(|n| n.get().to_string()).unwrap_or_else(|_| "?".into())
            });
        // Copies of both binaries: a rebuild during the run (others may build in the same
        // target dir) must neither break the run nor mix two builds in one report.
        let bin_dir = procs::WorkDir::new("bin")?;
        let server_src = args.server_bin()?;
        let server_bin = bin_dir.path("accessbot");
        std::fs::copy(&server_src, &server_bin).with_context(|| format!("copying {}", server_src.display()))?;
        let bench_bin = bin_dir.path("bench");
        std::fs::copy(std::env::current_exe()?, &bench_bin).context("copying this binary")?;
        let (pin, placement) = if args.no_pin {
            (false, "not pinned (--no-pin)".to_string())
        } else if !procs::taskset_available() {
            (
                false,
                "NOT pinned: taskset is missing (apt-get install util-linux); server and load share every core".into(),
            )
        } else {
            match procs::pin_self(1) {
                Ok(()) => (
                    true,
                    "server (and ceiling, Bolt peer) pinned to CPU 0 with `taskset -c 0`; \
                     load generator + fake Slack (this process) pinned to CPU 1 with `taskset -a -cp 1`"
                        .to_string(),
                ),
                Err(e) => (false, format!("NOT pinned: {e:#}")),
            }
        };
        eprintln!("placement: {placement}");
        Ok(Machine {
            started: Utc::now(),
            cores,
            bench_profile: if cfg!(debug_assertions) { "debug" } else { "release" },
            server_src,
            server_bin,
            bench_bin,
            pin,
            placement,
            _bin_dir: bin_dir,
        })
    }

    pub fn server_profile(&self) -> String {
        let dir = self.server_src.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
        match dir {
            "release" | "debug" => format!("{dir} build"),
            _ => format!("build of {}", self.server_src.display()),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} — {} cores (nproc) — server: {} — bench: {} build",
            self.started.format("%Y-%m-%d %H:%M UTC"),
            self.cores,
            self.server_profile(),
            self.bench_profile
        )
    }
}

/// The 1-minute load average (other work on the machine skews latencies).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints a section header: what ran where, and the load average when it started.
pub fn section_header(title: &str, backend: &str, env: &Machine, load_start: &str, load_end: &str) {
    println!();
    println!("== {title} — backend {backend} — {}", env.describe());
    println!("   {}", env.placement);
    println!(
        "   load average (1 min) {load_start} at the start, {load_end} at the end \
         (other builds and tests may share this machine's cores)"
    );
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Seconds since the bench started (for progress lines).
pub fn elapsed() -> f64 {
    STARTED.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}
