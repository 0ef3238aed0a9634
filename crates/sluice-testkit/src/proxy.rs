//! A TCP proxy that speaks just enough Kafka framing to drop chosen responses: it forwards
//! requests and responses between a client and a broker, and on average one Produce response in
//! `drop_every` is swallowed and the connection cut, as a network failure after the broker wrote
//! but before the client heard. Clients then retry, which is what idempotence must survive.
//!
//! Which responses are dropped is pseudo-random (seeded, the seed printed on stderr; set
//! `SLUICE_PROXY_SEED` to replay a run). A fixed "every Nth" rule can lock step with a client's
//! retry pattern: franz-go resends its pending batches on a new connection in a fixed order, and
//! with every 3rd response dropped the one response that would move it forward was the one
//! dropped, on every connection, forever.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Kafka's Produce API key.
const PRODUCE: i16 = 0;

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct FaultyProxy {
    /// The port clients connect to.
    port: u16,
    /// Set on drop to stop the accept loop.
    stop: Arc<AtomicBool>,
    /// Produce responses dropped so far.
    dropped: Arc<AtomicU64>,
}

/// Reads one length-prefixed frame; `None` at a clean end of stream.
fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = i32::from_be_bytes(len);
    if !(0..=256 * 1024 * 1024).contains(&n) {
        return Err(std::io::Error::other("bad frame length"));
    }
    let mut frame = len.to_vec();
    frame.resize(4 + n as usize, 0);
    s.read_exact(&mut frame[4..])?;
    Ok(Some(frame))
}

impl FaultyProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: String, drop_every: u64) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        Self::serve(listener, upstream, drop_every)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: TcpListener, upstream: String, drop_every: u64) -> FaultyProxy {
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let produce_seen = Arc::new(AtomicU64::new(0));
        let seed = std::env::var("SLUICE_PROXY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        eprintln!("faulty-proxy: seed {seed} (SLUICE_PROXY_SEED), dropping 1 in {drop_every} Produce responses");
        let drops = Drops {
            seed,
            every: drop_every,
            seen: produce_seen,
        };
        let (stop2, dropped2) = (stop.clone(), dropped.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let (d, p) = (dropped2.clone(), drops.clone());
                        thread::spawn(move || pipe(client, server, p, d));
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FaultyProxy {
            port,
            stop,
            dropped,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Produce responses dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Decides which Produce responses are dropped: the n-th one seen (over all connections) is
/// dropped when a hash of the seed and n falls in a 1-in-`every` range.
#[derive(Debug, Clone)]
struct Drops {
    seed: u64,
    /// 0 drops nothing.
    every: u64,
    /// Produce responses seen so far, over all connections.
    seen: Arc<AtomicU64>,
}

impl Drops {
    fn next_is_dropped(&self) -> bool {
        if self.every == 0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).is_multiple_of(self.every)
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Says on stderr that a response was dropped, so scripts can check the proxy did its job.
fn tracing_line(total: u64) {
    eprintln!("faulty-proxy: dropped produce response (total {total})");
}

/// Forwards one connection in both directions until either side closes.
fn pipe(mut client: TcpStream, mut server: TcpStream, drops: Drops, dropped: Arc<AtomicU64>) {
    // API key of each request still waiting for its response, in order. Produce with acks=0
    // gets no response; the idempotence tests use acks=all, so that case is not tracked.
    let pending: Arc<Mutex<VecDeque<i16>>> = Arc::new(Mutex::new(VecDeque::new()));
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let pending_w = pending.clone();
    let upstream = thread::spawn(move || {
        while let Ok(Some(frame)) = read_frame(&mut client_r) {
            if frame.len() >= 6 {
                let key = i16::from_be_bytes([frame[4], frame[5]]);
                pending_w.lock().expect("pending").push_back(key);
            }
            if server_w.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = server_w.shutdown(Shutdown::Both);
    });
    while let Ok(Some(frame)) = read_frame(&mut server) {
        let key = pending.lock().expect("pending").pop_front();
        if key == Some(PRODUCE) && drops.next_is_dropped() {
            let total = dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing_line(total);
            break;
        }
        if client.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = upstream.join();
}
