//! `sluice group …`: consumer groups: list, describe with lag, reset offsets, delete.
//!
//! Plain Kafka requests (ListGroups, DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit,
//! DeleteGroups), so it works against Kafka too. Offsets are read from and written to the
//! bootstrap server, which on a single node is every group's coordinator and every partition's
//! leader.

use std::collections::BTreeMap;

use bytes::Buf;
use clap::{Args, Subcommand};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::topic::metadata;
use super::{check, connect, Common};

/// Group subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Show a group's members and, per partition, committed offset, log end offset and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete a group that has no active members, with its committed offsets.
    Delete {
        /// Group id.
        group: String,
    },
}

/// Arguments of `sluice group reset-offsets`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
pub(crate) struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets move (every partition).
    #[arg(long)]
    topic: String,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped into the log's range).
    #[arg(long)]
    to_offset: Option<i64>,
    /// To the first record at or after this time: `YYYY-MM-DDTHH:MM:SS[.mmm]` (UTC) or epoch ms.
    #[arg(long)]
    to_datetime: Option<String>,
    /// Print the new offsets without committing them.
    #[arg(long)]
    dry_run: bool,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Runs a group subcommand.
pub(crate) async fn run(command: GroupCommand, common: &Common) -> anyhow::Result<()> {
    let mut client = connect(common).await?;
    match command {
        GroupCommand::List => {
            let response = client.send(&ListGroupsRequest::default(), 4).await?;
            check(response.error_code, None, "cannot list groups")?;
            let mut groups = response.groups;
            groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
            println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
            for g in groups {
                println!(
                    "{:<40} {:<20} {}",
                    g.group_id.as_str(),
                    g.group_state.as_str(),
                    g.protocol_type.as_str()
                );
            }
        }
        GroupCommand::Describe { group } => describe(&mut client, &group).await?,
        GroupCommand::ResetOffsets(args) => reset(&mut client, args).await?,
        GroupCommand::Delete { group } => {
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(&group))]);
            let response = client.send(&request, 2).await?;
            for r in &response.results {
                check(r.error_code, None, &format!("cannot delete group {group}"))?;
            }
            println!("Deleted group {group}.");
        }
    }
    Ok(())
}

/// (topic, partition) → (member id, host, client id) from the members' consumer assignments.
type Owners = BTreeMap<(String, i32), (String, String, String)>;

/// Decodes a `ConsumerProtocolAssignment` (version, then topics with partition arrays).
fn assignment_partitions(mut b: bytes::Bytes) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    if b.remaining() < 6 {
        return out;
    }
    let _version = b.get_i16();
    let topics = b.get_i32();
    for _ in 0..topics.max(0) {
        if b.remaining() < 2 {
            break;
        }
        let len = b.get_i16();
        if len < 0 || b.remaining() < len as usize + 4 {
            break;
        }
        let topic = String::from_utf8_lossy(&b.split_to(len as usize)).into_owned();
        let count = b.get_i32();
        for _ in 0..count.max(0) {
            if b.remaining() < 4 {
                return out;
            }
            out.push((topic.clone(), b.get_i32()));
        }
    }
    out
}

/// The group's state and who owns which partition.
async fn members(
    client: &mut sluice_client::Client,
    group: &str,
) -> anyhow::Result<(String, usize, Owners)> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]);
    let response = client.send(&request, 5).await?;
    let d = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no description of group {group}"))?;
    check(
        d.error_code,
        None,
        &format!("cannot describe group {group}"),
    )?;
    let mut owners = Owners::new();
    let count = d.members.len();
    for m in d.members {
        for tp in assignment_partitions(m.member_assignment.clone()) {
            owners.insert(
                tp,
                (
                    m.member_id.to_string(),
                    m.client_host.to_string(),
                    m.client_id.to_string(),
                ),
            );
        }
    }
    Ok((d.group_state.to_string(), count, owners))
}

/// Log start or end offsets (`timestamp` -2 / -1) or the offsets for a time.
async fn list_offsets(
    client: &mut sluice_client::Client,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .iter()
        .map(|(t, ps)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(topics);
    let response = client.send(&request, 7).await?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                None,
                &format!(
                    "cannot list offsets of {}-{}",
                    t.name.as_str(),
                    p.partition_index
                ),
            )?;
            out.insert((t.name.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

async fn committed(
    client: &mut sluice_client::Client,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(None);
    let response = client.send(&request, 7).await?;
    check(
        response.error_code,
        None,
        &format!("cannot fetch offsets of {group}"),
    )?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

async fn describe(client: &mut sluice_client::Client, group: &str) -> anyhow::Result<()> {
    let (state, count, owners) = members(client, group).await?;
    let offsets = committed(client, group).await?;
    let mut partitions: Vec<(String, i32)> = offsets.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    partitions.sort();
    partitions.dedup();
    if state == "Dead" && partitions.is_empty() {
        anyhow::bail!("consumer group {group} does not exist");
    }
    let ends = list_offsets(client, &partitions, -1).await?;
    println!("Group {group} is {state} with {count} member(s).");
    println!(
        "{:<30} {:>9} {:>15} {:>15} {:>10}  {:<45} {:<15} CLIENT-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    for tp in &partitions {
        let current = offsets.get(tp).copied();
        let end = ends.get(tp).copied().unwrap_or(-1);
        let lag = current.map(|c| (end - c).max(0));
        let (member, host, client_id) = owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".to_string(), "-".to_string(), "-".to_string()));
        let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<30} {:>9} {:>15} {:>15} {:>10}  {:<45} {:<15} {}",
            tp.0,
            tp.1,
            show(current),
            end,
            show(lag),
            member,
            host,
            client_id
        );
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.mmm][Z]` (UTC) or plain epoch milliseconds.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || anyhow::anyhow!("cannot read `{s}`: expected YYYY-MM-DDTHH:MM:SS[.mmm] or epoch ms");
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let num = |v: &str| v.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let (time, millis) = match time.split_once('.') {
        Some((t, ms)) => (t, num(&format!("{ms:0<3}")[..3])?),
        None => (time, 0),
    };
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    let days = days_from_civil(num(d[0])?, num(d[1])?, num(d[2])?);
    let secs = num(t[0])? * 3600 + num(t[1])? * 60 + num(t[2])?;
    Ok((days * 86_400 + secs) * 1000 + millis)
}

async fn reset(client: &mut sluice_client::Client, args: ResetArgs) -> anyhow::Result<()> {
    let (state, _, _) = members(client, &args.group).await?;
    if state != "Empty" && state != "Dead" {
        anyhow::bail!(
            "group {} is {state}: offsets can only be reset while it has no active members",
            args.group
        );
    }
    let meta = metadata(client, std::slice::from_ref(&args.topic)).await?;
    let topic = meta
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for topic {}", args.topic))?;
    check(topic.error_code, None, &format!("topic {}", args.topic))?;
    let mut partitions: Vec<(String, i32)> = topic
        .partitions
        .iter()
        .map(|p| (args.topic.clone(), p.partition_index))
        .collect();
    partitions.sort();
    let earliest = list_offsets(client, &partitions, -2).await?;
    let latest = list_offsets(client, &partitions, -1).await?;
    let targets: BTreeMap<(String, i32), i64> = if args.to_earliest {
        earliest.clone()
    } else if args.to_latest {
        latest.clone()
    } else if let Some(offset) = args.to_offset {
        partitions
            .iter()
            .map(|tp| {
                let lo = earliest.get(tp).copied().unwrap_or(0);
                let hi = latest.get(tp).copied().unwrap_or(0);
                (tp.clone(), offset.clamp(lo, hi.max(lo)))
            })
            .collect()
    } else {
        let when = parse_datetime(args.to_datetime.as_deref().unwrap_or_default())?;
        let found = list_offsets(client, &partitions, when).await?;
        // No record that late: the end of the log.
        found
            .into_iter()
            .map(|(tp, o)| {
                let o = if o < 0 {
                    latest.get(&tp).copied().unwrap_or(0)
                } else {
                    o
                };
                (tp, o)
            })
            .collect()
    };
    println!("{:<30} {:>9} {:>15}", "TOPIC", "PARTITION", "NEW-OFFSET");
    for ((t, p), o) in &targets {
        println!("{t:<30} {p:>9} {o:>15}");
    }
    if args.dry_run {
        return Ok(());
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(&args.group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(&args.topic)))
            .with_partitions(
                targets
                    .iter()
                    .map(|((_, p), o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(-1)
                    })
                    .collect(),
            )]);
    let response = client.send(&request, 8).await?;
    for t in &response.topics {
        for p in &t.partitions {
            check(
                p.error_code,
                None,
                &format!("cannot commit {}-{}", t.name.as_str(), p.partition_index),
            )?;
        }
    }
    println!("Reset offsets of group {} on {}.", args.group, args.topic);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(parse_datetime("1700000000000").unwrap(), 1_700_000_000_000);
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn assignment_decodes_and_survives_garbage() {
        let mut b = bytes::BytesMut::new();
        use bytes::BufMut;
        b.put_i16(0);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(3);
        b.put_i32(-1);
        let parts = assignment_partitions(b.freeze());
        assert_eq!(parts, vec![("t".to_string(), 0), ("t".to_string(), 3)]);
        assert!(assignment_partitions(bytes::Bytes::from_static(&[
            0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 9
        ]))
        .is_empty());
    }
}
