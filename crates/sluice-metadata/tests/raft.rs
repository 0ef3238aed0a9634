//! The Raft metadata quorum over real TCP on 127.0.0.1: election, commit through a follower,
//! failover, restart with catch-up (through the log and through a snapshot), and bad frames on
//! the RPC port. Every wait polls with a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_metadata::controller::{ControllerReply, ControllerRequest, Placement, Registration};
use sluice_metadata::quorum::MetadataQuorum;
use sluice_metadata::raft::{RaftQuorum, RaftQuorumOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

struct Cluster {
    _tmp: tempfile::TempDir,
    dirs: BTreeMap<i32, PathBuf>,
    voters: BTreeMap<i32, String>,
    nodes: BTreeMap<i32, Option<Arc<RaftQuorum>>>,
    options: RaftQuorumOptions,
}

async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("bind {addr}: {e}; retrying");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

impl Cluster {
    async fn start(n: i32, snapshot_bytes: u64) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        let mut voters = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in 1..=n {
            let l = bind("127.0.0.1:0").await;
            voters.insert(id, l.local_addr().unwrap().to_string());
            listeners.insert(id, l);
            dirs.insert(id, tmp.path().join(format!("node-{id}")));
        }
        let options = RaftQuorumOptions {
            snapshot_bytes,
            ..RaftQuorumOptions::default()
        };
        let mut cluster = Cluster {
            _tmp: tmp,
            dirs,
            voters,
            nodes: BTreeMap::new(),
            options,
        };
        for (id, listener) in listeners {
            let q = cluster.start_node(id, listener).await;
            cluster.nodes.insert(id, Some(q));
        }
        cluster
    }

    async fn start_node(&self, id: i32, listener: TcpListener) -> Arc<RaftQuorum> {
        let dir: &Path = &self.dirs[&id];
        Arc::new(
            RaftQuorum::start_with(id, dir, self.voters.clone(), listener, self.options.clone())
                .await
                .unwrap(),
        )
    }

    async fn restart(&mut self, id: i32) -> Arc<RaftQuorum> {
        let listener = bind(&self.voters[&id]).await;
        let q = self.start_node(id, listener).await;
        self.nodes.insert(id, Some(q.clone()));
        q
    }

    async fn stop(&mut self, id: i32) {
        if let Some(q) = self.nodes.get_mut(&id).and_then(Option::take) {
            q.shutdown().await;
        }
    }

    fn node(&self, id: i32) -> Arc<RaftQuorum> {
        self.nodes[&id].clone().unwrap()
    }

    fn running(&self) -> Vec<Arc<RaftQuorum>> {
        self.nodes.values().flatten().cloned().collect()
    }

    /// The leader every running voter agrees on.
    async fn leader(&self) -> i32 {
        wait_for("a leader all running voters agree on", || {
            let running = self.running();
            let first = running.first()?.leader_id()?;
            let agreed = running.iter().all(|q| q.leader_id() == Some(first));
            let alive = running.iter().any(|q| q.node_id() == first);
            (agreed && alive).then_some(first)
        })
        .await
    }

    async fn shutdown(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Polls `f` until it returns `Some`, or panics at the deadline.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn create_topic(name: &str) -> ControllerRequest {
    ControllerRequest::CreateTopic {
        name: name.to_string(),
        placement: Placement::auto(3, 1),
        configs: BTreeMap::new(),
    }
}

/// Registers and unfences broker 1, so topics can be placed.
async fn register_broker(q: &RaftQuorum) {
    let committed = q
        .submit_async(ControllerRequest::RegisterBroker(Registration {
            broker_id: 1,
            incarnation_id: Uuid::new_v4(),
            endpoints: Vec::new(),
            rack: None,
            log_dirs: Vec::new(),
        }))
        .await
        .unwrap();
    let ControllerReply::Registered(epoch) = committed.reply else {
        panic!("unexpected reply {:?}", committed.reply);
    };
    q.submit_async(ControllerRequest::UnfenceBroker {
        broker_id: 1,
        broker_epoch: epoch,
    })
    .await
    .unwrap();
}

fn follower_of(cluster: &Cluster, leader: i32) -> Arc<RaftQuorum> {
    cluster
        .running()
        .into_iter()
        .find(|q| q.node_id() != leader)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_and_commit_through_a_follower() {
    let mut cluster = Cluster::start(3, 20 << 20).await;
    let leader = cluster.leader().await;
    let follower = follower_of(&cluster, leader);
    assert!(cluster.node(leader).current_term() >= 1);
    register_broker(&follower).await;

    // The synchronous trait method, from a thread that is not a runtime worker.
    let f = follower.clone();
    let committed = tokio::task::spawn_blocking(move || f.submit(create_topic("orders")))
        .await
        .unwrap()
        .unwrap();
    let ControllerReply::TopicCreated(id) = committed.reply else {
        panic!("unexpected reply {:?}", committed.reply);
    };
    // Read-your-write on the follower that submitted.
    assert_eq!(committed.image.topic("orders").unwrap().id, id);
    for q in cluster.running() {
        wait_for("every voter to show the topic with the same id", || {
            (q.image().topic("orders")?.id == id).then_some(())
        })
        .await;
    }

    // A refusal comes back as the controller's error, through the follower too.
    let refused = follower.submit_async(create_topic("orders")).await;
    assert!(
        matches!(
            refused,
            Err(sluice_metadata::raft::RaftQuorumError::Refused(_))
        ),
        "{refused:?}"
    );

    // The leader reports every voter's replication.
    let status = wait_for("the leader to see both followers caught up", || {
        let s = cluster.node(leader).raft_status();
        let end = s.last_log_index? + 1;
        let caught_up =
            s.voters.len() == 3 && s.voters.iter().all(|v| v.log_end_index == Some(end));
        caught_up.then_some(s)
    })
    .await;
    assert!(status
        .voters
        .iter()
        .all(|v| v.last_contact_ms_ago.is_some_and(|ms| ms < 5_000)));
    // The same in Kafka's terms (DescribeQuorum): record offsets and wall-clock times.
    let kafka = MetadataQuorum::status(&*cluster.node(leader));
    assert_eq!(kafka.leader_id, leader);
    assert!(kafka.leader_epoch >= 1);
    assert_eq!(kafka.high_watermark, follower.image().offset + 1);
    assert_eq!(kafka.voters.len(), 3);
    for v in &kafka.voters {
        assert_eq!(v.log_end_offset, kafka.high_watermark, "{kafka:?}");
        assert!(v.last_fetch_ms > 0 && v.last_caught_up_ms > 0, "{kafka:?}");
    }
    println!("DescribeQuorum view on the leader: {kafka:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_when_the_leader_stops() {
    let mut cluster = Cluster::start(3, 20 << 20).await;
    let old = cluster.leader().await;
    let survivor = follower_of(&cluster, old);
    register_broker(&survivor).await;
    survivor.submit_async(create_topic("before")).await.unwrap();

    let stopped_at = Instant::now();
    cluster.stop(old).await;
    let committed = survivor.submit_async(create_topic("after")).await.unwrap();
    let failover = stopped_at.elapsed();
    println!(
        "failover: {} ms from stopping leader {old} to the next commit",
        failover.as_millis()
    );
    assert!(committed.image.topic("after").is_some());
    let new = cluster.leader().await;
    assert_ne!(new, old);
    for q in cluster.running() {
        wait_for("both survivors to show the new topic", || {
            q.image().topic("after").map(|_| ())
        })
        .await;
    }
    cluster.shutdown().await;
}

/// Stops a follower, commits while it is down, restarts it from its directory, and checks it
/// kept its log and vote and catches up. Returns the cluster and the restarted voter's id.
async fn restart_follower_and_catch_up(snapshot_bytes: u64) -> (Cluster, i32) {
    let mut cluster = Cluster::start(3, snapshot_bytes).await;
    let leader = cluster.leader().await;
    let down = follower_of(&cluster, leader).node_id();
    register_broker(&cluster.node(leader)).await;
    cluster
        .node(leader)
        .submit_async(create_topic("t0"))
        .await
        .unwrap();
    let q = cluster.node(down);
    wait_for("the follower to apply t0", || {
        q.image().topic("t0").map(|_| ())
    })
    .await;
    let before = q.raft_metrics();
    drop(q);
    cluster.stop(down).await;

    let up = cluster.node(leader);
    for i in 1..=5 {
        up.submit_async(create_topic(&format!("t{i}")))
            .await
            .unwrap();
    }

    if snapshot_bytes <= 1 {
        // The leader must have dropped entries the stopped voter never got, so that only a
        // snapshot can bring it up to date.
        let down_end = before.last_log_index.unwrap();
        let purged = wait_for("the leader to purge past the stopped voter's log", || {
            let purged = up.raft_metrics().purged?;
            (purged.index > down_end).then_some(purged)
        })
        .await;
        println!("stopped voter's log ends at {down_end}; leader purged up to {purged}");
    }

    let q = cluster.restart(down).await;
    let after = q.raft_metrics();
    assert!(
        after.last_log_index >= before.last_log_index,
        "log kept: {:?} before, {:?} after restart",
        before.last_log_index,
        after.last_log_index
    );
    assert!(
        after.vote.leader_id().term >= before.vote.leader_id().term,
        "vote kept: {} before, {} after restart",
        before.vote,
        after.vote
    );
    wait_for("the restarted voter to catch up", || {
        let image = q.image();
        (image.topic_count() == 6).then_some(())
    })
    .await;
    let leader_image = cluster.node(cluster.leader().await).image();
    for i in 0..=5 {
        let name = format!("t{i}");
        assert_eq!(
            q.image().topic(&name).unwrap().id,
            leader_image.topic(&name).unwrap().id
        );
    }
    (cluster, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_voter_keeps_its_log_and_catches_up() {
    let (mut cluster, _) = restart_follower_and_catch_up(20 << 20).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_voter_catches_up_through_a_snapshot() {
    // Every batch is over one byte: a snapshot after each, and the log purged behind it.
    let (mut cluster, down) = restart_follower_and_catch_up(1).await;
    let q = cluster.node(down);
    let metrics = q.raft_metrics();
    let snapshot = metrics
        .snapshot
        .expect("the restarted voter holds a snapshot");
    println!("restarted voter holds a snapshot at {snapshot}");
    // Restarting again starts from the installed snapshot.
    drop(q);
    cluster.stop(down).await;
    let q = cluster.restart(down).await;
    assert_eq!(
        q.image().topic_count(),
        6,
        "image rebuilt from the snapshot"
    );
    cluster.shutdown().await;
}

async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got)).await;
    // A reset is a close too.
    if let Ok(Err(ref e)) = read {
        eprintln!("read: {e}");
    }
    assert!(read.is_ok(), "the server did not close the connection");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_an_error_and_a_close_not_a_panic() {
    let mut cluster = Cluster::start(3, 20 << 20).await;
    let leader = cluster.leader().await;
    let addr = cluster.voters[&leader].clone();

    // A frame longer than the limit: closed without reading it.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let got = read_to_close(&mut s).await;
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).contains("BadRequest"),
        "{got:?}"
    );

    // A frame of garbage: an error answer, then a close.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let junk = b"{\"NotARequest\": [1, 2, 3]}";
    s.write_all(&(junk.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(junk).await.unwrap();
    let got = read_to_close(&mut s).await;
    assert!(got.len() > 4, "{got:?}");
    let len = u32::from_be_bytes([got[0], got[1], got[2], got[3]]) as usize;
    let body = String::from_utf8_lossy(&got[4..4 + len]);
    assert!(body.contains("BadRequest"), "{body}");

    // A frame cut short, then the peer goes away.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(b"{\"Vote\"").await.unwrap();
    drop(s);

    // The quorum still works.
    register_broker(&cluster.node(leader)).await;
    cluster
        .node(leader)
        .submit_async(create_topic("still-fine"))
        .await
        .unwrap();
    assert_eq!(cluster.leader().await, leader);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarts_from_its_directories() {
    for snapshot_bytes in [20 << 20, 1] {
        let mut cluster = Cluster::start(3, snapshot_bytes).await;
        let leader = cluster.node(cluster.leader().await);
        register_broker(&leader).await;
        for i in 0..3 {
            leader
                .submit_async(create_topic(&format!("t{i}")))
                .await
                .unwrap();
        }
        let ids: Vec<i32> = cluster.voters.keys().copied().collect();
        for q in cluster.running() {
            wait_for("every voter to apply all topics", || {
                (q.image().topic_count() == 3).then_some(())
            })
            .await;
        }
        let term = leader.current_term();
        drop(leader);
        cluster.shutdown().await;

        // One voter of three, alone: no leader, yet its image comes back from its own disk.
        let lone = cluster.restart(ids[0]).await;
        wait_for("the lone voter to rebuild its image", || {
            (lone.image().topic_count() == 3).then_some(())
        })
        .await;
        // (A lone ex-leader may name itself leader again: openraft restores a committed vote
        // of its own; it cannot commit anything alone.)
        assert!(lone.current_term() >= term);

        for id in &ids[1..] {
            cluster.restart(*id).await;
        }
        let leader = cluster.node(cluster.leader().await);
        leader.submit_async(create_topic("t3")).await.unwrap();
        for q in cluster.running() {
            wait_for("every voter to apply the new topic", || {
                (q.image().topic_count() == 4).then_some(())
            })
            .await;
        }
        drop(leader);
        cluster.shutdown().await;
    }
}
