//! `sluice`: the server (`sluice server`) and the client tools.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod cli;

/// mimalloc keeps freed memory for reuse: on the reference machines first writes to fresh pages
/// run at a tenth of the speed of reused ones (DESIGN.md section 4), and every request allocates.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sluice: a Kafka-compatible event-streaming platform.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker node. With no flags: one node, data in ./sluice-data, listening on
    /// 127.0.0.1:9092, topic auto-creation on.
    Server {
        /// A Kafka `server.properties`-style file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set a property, e.g. `--override num.partitions=6` (repeatable; wins over --config).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and CI output stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match args.command {
        Command::Server { config, overrides } => {
            init_tracing();
            runtime.block_on(server(config, overrides))
        }
        Command::Client(cmd) => runtime.block_on(cli::run(cmd)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn server(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    let config = sluice_broker::BrokerConfig::load(config.as_deref(), &overrides)?;
    let listener = sluice_broker::server::bind(&config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listener))?;
    sluice_broker::server::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
