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
    /// Prepare a node's data directory, as Kafka's `kafka-storage.sh`.
    #[command(subcommand)]
    Storage(StorageCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Write `meta.properties` into the configured log directory, tying it to one cluster and
    /// this `node.id`. Every node of a cluster is formatted with the same cluster id.
    Format {
        /// The cluster id, 22 characters of URL-safe base64 (`sluice storage random-uuid`).
        #[arg(long = "cluster-id", short = 't')]
        cluster_id: String,
        /// The node's `server.properties`-style file.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Set a property (repeatable; wins over --config).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Leave a directory that is formatted already as it is instead of failing.
        #[arg(long = "ignore-formatted", short = 'g')]
        ignore_formatted: bool,
        /// This node is the quorum's only voter (Kafka's `--standalone`), which is also what a
        /// node without `controller.quorum.voters` assumes.
        #[arg(long, short = 's')]
        standalone: bool,
    },
    /// Print a new random cluster id.
    RandomUuid,
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
        Command::Storage(cmd) => storage(cmd),
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
    // Signal handlers first: a SIGTERM that arrives while the node opens its storage must
    // still shut it down cleanly, not kill it mid-write.
    let shutdown = shutdown_signal()?;
    let listeners = sluice_broker::server::bind(&config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen: {e}"))?;
    sluice_broker::server::run(config, listeners, shutdown).await?;
    Ok(())
}

fn storage(cmd: StorageCommand) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::RandomUuid => {
            println!("{}", sluice_broker::node::random_cluster_id());
            Ok(())
        }
        StorageCommand::Format {
            cluster_id,
            config,
            overrides,
            ignore_formatted,
            standalone: _,
        } => {
            let config = sluice_broker::BrokerConfig::load(config.as_deref(), &overrides)?;
            sluice_broker::node::format(&config, &cluster_id, ignore_formatted)?;
            println!(
                "Formatted {} with cluster.id {cluster_id} for node.id {}.",
                config.log_dir.display(),
                config.node_id
            );
            Ok(())
        }
    }
}

/// A future that completes on SIGINT or SIGTERM; the handlers are installed before it returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
