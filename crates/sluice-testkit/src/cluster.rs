//! A cluster of real `sluice server` processes on loopback: N combined nodes (broker and
//! controller), each with its own client and controller ports, data dir and log file, formatted
//! with one cluster id as Kafka's nodes are. Any node can be SIGKILLed, SIGSTOPped and
//! continued, stopped cleanly and restarted; every process is killed when the cluster is dropped,
//! also when the test panics.

use std::fmt::Write as _;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, signal, wait_for, START_TIMEOUT};

/// One node of a [`TestCluster`].
#[derive(Debug)]
pub struct ClusterNode {
    /// `node.id`.
    pub id: i32,
    /// Client (PLAINTEXT) port.
    pub port: u16,
    /// Controller (Raft) port.
    pub controller_port: u16,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// The running process; `None` while stopped or killed.
    child: Option<Child>,
}

/// N combined nodes forming one cluster.
#[derive(Debug)]
pub struct TestCluster {
    /// The `sluice` binary.
    binary: PathBuf,
    /// Root of every node's files (removed on drop).
    dir: tempfile::TempDir,
    /// The nodes, by position (node ids 1..=N).
    nodes: Vec<ClusterNode>,
    /// Extra properties for every node.
    extra: Vec<String>,
}

impl TestCluster {
    /// Formats and starts `n` nodes with ids 1..=n; `racks`, when given, sets each node's
    /// `broker.rack`; `extra` are more `key=value` properties for every node. Returns once every
    /// node serves clients.
    pub fn start(
        binary: impl Into<PathBuf>,
        n: usize,
        racks: Option<&[&str]>,
        extra: &[&str],
    ) -> TestCluster {
        let all: Vec<usize> = (0..n).collect();
        TestCluster::start_some(binary, n, racks, extra, &all)
    }

    /// Like [`TestCluster::start`], but formats all `n` nodes and starts only those in
    /// `running` (positions); the others can be started later with [`TestCluster::restart`].
    pub fn start_some(
        binary: impl Into<PathBuf>,
        n: usize,
        racks: Option<&[&str]>,
        extra: &[&str],
        running: &[usize],
    ) -> TestCluster {
        let mut cluster = TestCluster {
            binary: binary.into(),
            dir: tempfile::tempdir().expect("temp dir"),
            nodes: (0..n)
                .map(|i| ClusterNode {
                    id: i as i32 + 1,
                    port: free_port(),
                    controller_port: free_port(),
                    rack: racks.map(|r| r[i].to_string()),
                    child: None,
                })
                .collect(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let id = cluster.random_cluster_id();
        for i in 0..n {
            cluster.write_properties(i);
            let out = Command::new(&cluster.binary)
                .args(["storage", "format", "--cluster-id", &id, "--config"])
                .arg(cluster.properties(i))
                .output()
                .expect("run sluice storage format");
            assert!(
                out.status.success(),
                "format node {}: {}",
                i + 1,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for &i in running {
            cluster.spawn(i);
        }
        for &i in running {
            cluster.wait_serving(i);
        }
        cluster
    }

    /// Whether node `i`'s process is running (started and not exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn random_cluster_id(&self) -> String {
        let out = Command::new(&self.binary)
            .args(["storage", "random-uuid"])
            .output()
            .expect("run sluice storage random-uuid");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{}", i + 1))
    }

    fn properties(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("server.properties")
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("data")
    }

    fn write_properties(&self, i: usize) {
        let node = &self.nodes[i];
        let voters: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect();
        let mut props = String::new();
        let _ = writeln!(props, "process.roles=broker,controller");
        let _ = writeln!(props, "node.id={}", node.id);
        let _ = writeln!(props, "controller.quorum.voters={}", voters.join(","));
        let _ = writeln!(
            props,
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.port, node.controller_port
        );
        let _ = writeln!(props, "controller.listener.names=CONTROLLER");
        let _ = writeln!(props, "inter.broker.listener.name=PLAINTEXT");
        let _ = writeln!(props, "log.dirs={}", self.data_dir(i).display());
        if let Some(rack) = &node.rack {
            let _ = writeln!(props, "broker.rack={rack}");
        }
        for e in &self.extra {
            let _ = writeln!(props, "{e}");
        }
        std::fs::create_dir_all(self.node_dir(i)).expect("node dir");
        std::fs::write(self.properties(i), props).expect("write server.properties");
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("server.log")
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        let child = Command::new(&self.binary)
            .args(["server", "--config"])
            .arg(self.properties(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start sluice server");
        self.nodes[i].child = Some(child);
    }

    fn wait_serving(&self, i: usize) {
        let port = self.nodes[i].port;
        if !wait_for(START_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        }) {
            panic!("node {} did not start:\n{}", i + 1, self.log(i));
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// `host:port` of every node's client listener, comma-separated (a bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port` of node `i`'s client listener.
    pub fn node_bootstrap(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s log output so far.
    pub fn log(&self, i: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path(i)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Kills node `i` with SIGKILL (a crash).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pauses node `i` (SIGSTOP): it holds its sockets but answers nothing.
    pub fn pause(&mut self, i: usize) {
        if let Some(child) = &self.nodes[i].child {
            signal(child, libc::SIGSTOP);
        }
    }

    /// Resumes a paused node (SIGCONT).
    pub fn resume(&mut self, i: usize) {
        if let Some(child) = &self.nodes[i].child {
            signal(child, libc::SIGCONT);
        }
    }

    /// Stops node `i` with SIGTERM and waits for it; returns whether it exited 0.
    pub fn stop(&mut self, i: usize) -> bool {
        let Some(mut child) = self.nodes[i].child.take() else {
            return true;
        };
        signal(&child, libc::SIGTERM);
        let exited = wait_for(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
        }
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts a stopped or killed node again on its ports and data dir.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "stop or kill node {} first",
            i + 1
        );
        let port = self.nodes[i].port;
        wait_for(Duration::from_secs(10), || {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        self.spawn(i);
        self.wait_serving(i);
    }

    /// The root of the cluster's files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            // A paused process cannot die of SIGKILL until it runs again on some kernels'
            // accounting; continue it first.
            self.resume(i);
            self.kill(i);
        }
    }
}
