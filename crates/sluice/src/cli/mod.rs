//! The client subcommands. Each is a plain Kafka protocol client (`--bootstrap-server`), so they
//! work against any Kafka cluster as well as Sluice.

use clap::{Args, Subcommand};

mod cluster;
mod consume;
mod group;
mod murmur2;
mod produce;
mod topic;
mod txn;

/// Options every client command takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// A broker to connect to, `host:port`.
    #[arg(long, default_value = "localhost:9092", global = true)]
    bootstrap_server: String,
}

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Create, list, describe, delete topics and add partitions.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Produce lines from standard input, one record per line.
    Produce {
        #[command(flatten)]
        args: produce::ProduceArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Consumer groups: list, describe with lag, reset offsets, delete.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        args: consume::ConsumeArgs,
        #[command(flatten)]
        common: Common,
    },
    /// The cluster: its id, brokers and metadata quorum.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
        #[command(flatten)]
        common: Common,
    },
    /// Transactions: list transactional ids, describe one (what kafka-transactions does).
    Txn {
        #[command(subcommand)]
        command: txn::TxnCommand,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs a client command.
pub(crate) async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Topic { command, common } => topic::run(command, &common).await,
        ClientCommand::Produce { args, common } => produce::run(args, &common).await,
        ClientCommand::Consume { args, common } => consume::run(args, &common).await,
        ClientCommand::Group { command, common } => group::run(command, &common).await,
        ClientCommand::Txn { command, common } => txn::run(command, &common).await,
        ClientCommand::Cluster { command, common } => cluster::run(command, &common).await,
    }
}

/// Connects to the bootstrap server with a message a person understands on failure.
pub(crate) async fn connect(common: &Common) -> anyhow::Result<sluice_client::Client> {
    sluice_client::Client::connect(&common.bootstrap_server)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (is a broker running there? set --bootstrap-server)"))
}

/// Turns a non-zero Kafka error code into an error naming it.
pub(crate) fn check(
    code: i16,
    message: Option<&kafka_protocol::protocol::StrBytes>,
    what: &str,
) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map(|e| e.to_string())
        .unwrap_or_default();
    match message {
        Some(m) if !m.is_empty() => anyhow::bail!("{what}: {name} ({code}): {m}"),
        _ => anyhow::bail!("{what}: {name} ({code})"),
    }
}
