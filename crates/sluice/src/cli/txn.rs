//! `sluice txn …`: transactional ids and their transactions (ListTransactions,
//! DescribeTransactions).

use clap::Subcommand;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{check, connect, Common};

/// Transaction subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TxnCommand {
    /// List transactional ids with their producer ids and states.
    List {
        /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
        /// CompleteAbort; repeatable).
        #[arg(long = "state")]
        states: Vec<String>,
    },
    /// Describe the current transaction of a transactional id.
    Describe {
        /// The transactional id.
        id: String,
    },
}

/// Runs a transaction subcommand.
pub(crate) async fn run(command: TxnCommand, common: &Common) -> anyhow::Result<()> {
    let mut client = connect(common).await?;
    match command {
        TxnCommand::List { states } => {
            let request = ListTransactionsRequest::default()
                .with_state_filters(states.into_iter().map(StrBytes::from_string).collect())
                .with_duration_filter(-1);
            let response = client.send(&request, 1).await?;
            check(response.error_code, None, "cannot list transactions")?;
            if !response.unknown_state_filters.is_empty() {
                let unknown: Vec<&str> = response
                    .unknown_state_filters
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                anyhow::bail!("unknown transaction state(s): {}", unknown.join(", "));
            }
            println!("{:<40} {:>12} STATE", "TRANSACTIONAL ID", "PRODUCER ID");
            for t in &response.transaction_states {
                println!(
                    "{:<40} {:>12} {}",
                    t.transactional_id.as_str(),
                    t.producer_id.0,
                    t.transaction_state.as_str()
                );
            }
        }
        TxnCommand::Describe { id } => {
            let request = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.clone()))]);
            let response = client.send(&request, 0).await?;
            for t in &response.transaction_states {
                check(t.error_code, None, &format!("cannot describe {id}"))?;
                println!("transactional id: {}", t.transactional_id.as_str());
                println!("producer id:      {}", t.producer_id.0);
                println!("producer epoch:   {}", t.producer_epoch);
                println!("state:            {}", t.transaction_state.as_str());
                println!("timeout ms:       {}", t.transaction_timeout_ms);
                println!("started (ms):     {}", t.transaction_start_time_ms);
                for topic in &t.topics {
                    let parts: Vec<String> =
                        topic.partitions.iter().map(|p| p.to_string()).collect();
                    println!(
                        "partitions:       {} [{}]",
                        topic.topic.as_str(),
                        parts.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}
