//! `accessbot serve | migrate | check-config | playground`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use accessbot::config::{self, Env};
use accessbot::outbox::OutboxConfig;
use accessbot::server::{self, Options};
use accessbot::workflow::system_clock;

/// mimalloc for Rust's allocations: glibc's malloc and free were 12-15 % of
/// the server's CPU at saturation (`perf`, the ack bench, 2026-12-07).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "accessbot", version, about = "App access requests and approvals, run from chat")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (Slack endpoints, outbox workers, probes).
    Serve {
        /// Config file [env: ACCESSBOT_CONFIG, default accessbot.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Port to listen on [env: PORT, default 3000]
        #[arg(long)]
        port: Option<u16>,
    },
    /// Create the database and apply migrations, then exit.
    Migrate,
    /// Validate the config file; exit 1 listing every problem.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Try it in a browser: act as anyone in the config, no Slack and no secrets needed
    /// (SQLite in a temporary file unless DATABASE_URL is set).
    Playground {
        #[arg(long, default_value = "accessbot.example.toml")]
        config: PathBuf,
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result =
        match cli.command {
            // Only the file matters here: a broken environment must not hide config problems.
            Command::CheckConfig { config } => check_config(config.unwrap_or_else(|| {
                std::env::var("ACCESSBOT_CONFIG").unwrap_or_else(|_| "accessbot.toml".into()).into()
            })),
            Command::Migrate => match Env::from_process() {
                Ok(env) => migrate(&env).await,
                Err(e) => Err(e.into()),
            },
            Command::Playground { config, port } => {
                accessbot::playground::run(&config, port, std::env::var("DATABASE_URL").ok()).await
            }
            Command::Serve { config, port } => match Env::from_process() {
                Ok(env) => serve(env, config, port).await,
                Err(e) => Err(e.into()),
            },
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let catalog = config::load_catalog(&path)?;
    println!(
        "{}: OK ({} apps, {} groups, {} super admins)",
        path.display(),
        catalog.apps.len(),
        catalog.groups.len(),
        catalog.settings.admins.len()
    );
    Ok(())
}

async fn migrate(env: &Env) -> anyhow::Result<()> {
    accessbot::store::open(&env.database_url).await?;
    println!("database migrated: {}", accessbot::redact::redact_url(&env.database_url));
    Ok(())
}

async fn serve(mut env: Env, config: Option<PathBuf>, port: Option<u16>) -> anyhow::Result<()> {
    if let Some(c) = config {
        env.config_path = c;
    }
    if let Some(p) = port {
        env.port = p;
    }
    env.require_secrets()?;
    let catalog = config::load_catalog(&env.config_path)?;
    env.require_okta(&catalog)?;
    if env.team_ids.is_none() {
        tracing::warn!("SLACK_TEAM_IDS is not set: any workspace that can sign with the secret is served");
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", env.port)).await?;
    let outbox = OutboxConfig { lease: env.outbox_lease, ..OutboxConfig::default() };
    let shutdown_grace = env.shutdown_timeout;
    let opts = Options {
        env,
        catalog,
        outbox,
        clock: system_clock(),
        shutdown_grace,
        header_timeout: accessbot::http::HEADER_TIMEOUT,
        socket_backoff: accessbot::slack::socket::Backoff::SLACK,
        jobs_interval: Some(server::JOBS_INTERVAL),
    };
    // Installed before the server is up, so an early SIGHUP never kills the process.
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let running = server::start(opts, listener).await?;
    #[cfg(unix)]
    let reloads = tokio::spawn(reload_on_sighup(hangups, running.reloader()));
    shutdown_signal().await;
    tracing::info!("shutting down");
    #[cfg(unix)]
    reloads.abort();
    running.stop().await;
    Ok(())
}

/// SIGHUP: re-read and validate the config file and apply it; an invalid file
/// is refused (every problem logged) and the running config kept.
#[cfg(unix)]
async fn reload_on_sighup(mut hangups: tokio::signal::unix::Signal, reloader: server::Reloader) {
    use accessbot::state::ReloadError;
    use accessbot::workflow::Actor;
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config file");
        match reloader.reload(&Actor::system(), "SIGHUP").await {
            Ok(report) => tracing::info!(
                apps = report.apps,
                groups = report.groups,
                flagged = report.flagged.len(),
                already_flagged = report.already_flagged.len(),
                no_longer_stranded = report.no_longer_stranded.len(),
                "SIGHUP: config reloaded"
            ),
            // Each problem was already logged with its key.
            Err(ReloadError::Invalid(e)) => {
                tracing::error!(problems = e.problems.len(), "SIGHUP: config refused; the running config is kept")
            }
            Err(ReloadError::Workflow(e)) => {
                tracing::error!(error = %e, "SIGHUP: config reload failed")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
