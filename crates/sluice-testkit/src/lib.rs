//! Shared helpers for integration tests: start the real `sluice server` binary on a free
//! loopback port with a temporary data directory, wait until it serves, and kill it on drop
//! (also when the test panics).

pub mod cluster;
pub mod proxy;

pub use cluster::TestCluster;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start listening.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `sluice server` child process.
#[derive(Debug)]
pub struct TestServer {
    /// The child process; killed on drop.
    child: Option<Child>,
    /// The binary, to restart with the same settings.
    binary: PathBuf,
    /// Extra `--override` settings given at start.
    overrides: Vec<String>,
    /// The data directory (removed on drop unless it was given by the caller).
    dir: tempfile::TempDir,
    /// The client port.
    port: u16,
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Runs a future to completion on a fresh current-thread runtime (for tests driving async
/// client APIs from plain `#[test]` functions).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

impl TestServer {
    /// Starts `binary` (normally `env!("CARGO_BIN_EXE_sluice")`) with `overrides`.
    pub fn start(binary: impl Into<PathBuf>, overrides: &[&str]) -> TestServer {
        Self::start_on(binary, free_port(), overrides)
    }

    /// Like [`TestServer::start`] on a given port.
    pub fn start_on(binary: impl Into<PathBuf>, port: u16, overrides: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = TestServer {
            child: None,
            binary: binary.into(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            dir,
            port,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("server")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--override")
            .arg(format!(
                "log.dirs={}",
                self.dir.path().join("data").display()
            ));
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let child = cmd.spawn().expect("start sluice server");
        self.child = Some(child);
        let port = self.port;
        if !wait_for(START_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        }) {
            panic!("sluice server did not start:\n{}", self.log());
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log output so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("server.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Stops the server with SIGTERM and waits for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        let port = self.port;
        // The old socket may linger briefly; wait until the port is free.
        wait_for(Duration::from_secs(10), || {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        self.spawn();
    }

    /// The path of the binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

pub(crate) fn signal(child: &Child, sig: libc::c_int) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}
