//! The `sluice` client commands against the real server: topic admin, produce from stdin with
//! key partitioning identical to the Java client's, consume; and clear errors for mistakes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use sluice_testkit::TestServer;

fn sluice(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run sluice");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("wait")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Kafka's murmur2 partitioner, written out independently of the CLI's so a shared bug cannot
/// hide: partition = (murmur2(key) & 0x7fffffff) % n.
fn java_partition(key: &[u8], n: u32) -> u32 {
    let m: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut i = 0;
    while i + 4 <= key.len() {
        let mut k = u32::from_le_bytes(key[i..i + 4].try_into().unwrap());
        k = k.wrapping_mul(m);
        k ^= k >> 24;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m) ^ k;
        i += 4;
    }
    let rest = &key[i..];
    match rest.len() {
        3 => {
            h ^= u32::from(rest[2]) << 16;
            h ^= u32::from(rest[1]) << 8;
            h ^= u32::from(rest[0]);
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= u32::from(rest[1]) << 8;
            h ^= u32::from(rest[0]);
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= u32::from(rest[0]);
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    (h & 0x7fff_ffff) % n
}

#[test]
fn topic_produce_consume_round_trip() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_sluice"), &[]);
    let b = s.bootstrap();
    let out = ok(&sluice(
        &b,
        &["topic", "create", "cli-t", "--partitions", "3"],
        None,
    ));
    assert!(
        out.contains("Created topic cli-t with 3 partition(s)"),
        "{out}"
    );
    let out = ok(&sluice(&b, &["topic", "list"], None));
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["cli-t"]);
    let out = ok(&sluice(&b, &["topic", "describe", "cli-t"], None));
    assert!(out.contains("PartitionCount: 3"), "{out}");
    assert_eq!(out.matches("Leader: 1").count(), 3, "{out}");

    let input: String = (0..60)
        .map(|i| format!("key{}:value{i}\n", i % 10))
        .collect();
    ok(&sluice(
        &b,
        &["produce", "cli-t", "--key-separator", ":"],
        Some(&input),
    ));
    let mut total = 0;
    for p in 0..3u32 {
        let out = ok(&sluice(
            &b,
            &[
                "consume",
                "cli-t",
                "--from-beginning",
                "--partition",
                &p.to_string(),
                "--print-key",
                "--timeout-ms",
                "1500",
            ],
            None,
        ));
        let mut last = -1i64;
        for line in out.lines() {
            let (key, value) = line.split_once('\t').expect("key<TAB>value");
            assert_eq!(
                java_partition(key.as_bytes(), 3),
                p,
                "key {key} on partition {p}"
            );
            let n: i64 = value.trim_start_matches("value").parse().unwrap();
            assert!(n > last, "order changed in partition {p}");
            last = n;
            total += 1;
        }
    }
    assert_eq!(total, 60);
    let out = ok(&sluice(
        &b,
        &["consume", "cli-t", "--from-beginning", "--max", "5"],
        None,
    ));
    assert_eq!(out.lines().count(), 5);

    ok(&sluice(
        &b,
        &["topic", "add-partitions", "cli-t", "--total", "5"],
        None,
    ));
    let out = ok(&sluice(&b, &["topic", "describe", "cli-t"], None));
    assert!(out.contains("PartitionCount: 5"), "{out}");
    ok(&sluice(&b, &["topic", "delete", "cli-t"], None));
    let out = ok(&sluice(&b, &["topic", "list"], None));
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn mistakes_get_messages_a_person_understands() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_sluice"), &[]);
    let b = s.bootstrap();
    ok(&sluice(&b, &["topic", "create", "dup"], None));
    let o = sluice(&b, &["topic", "create", "dup"], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already exists"), "{err}");
    let o = sluice(&b, &["topic", "create", "bad name!"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid topic name"));
    let o = sluice(&b, &["topic", "delete", "missing"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("UnknownTopicOrPartition"));
    let o = sluice("127.0.0.1:1", &["topic", "list"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot connect to 127.0.0.1:1"));
    // The server refuses unknown properties at start, naming them.
    let o = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["server", "--override", "no.such.setting=1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no.such.setting"));
}

/// `sluice topic delete-records` moves a partition's start; `sluice txn list/describe` show a
/// transactional id the broker knows, and both explain mistakes.
#[test]
fn delete_records_and_transactions() {
    let s = TestServer::start(env!("CARGO_BIN_EXE_sluice"), &[]);
    let b = s.bootstrap();
    ok(&sluice(
        &b,
        &["topic", "create", "dr", "--partitions", "1"],
        None,
    ));
    ok(&sluice(&b, &["produce", "dr"], Some("a\nb\nc\nd\n")));
    let out = ok(&sluice(
        &b,
        &["topic", "delete-records", "dr", "-p", "0", "--before", "2"],
        None,
    ));
    assert!(out.contains("dr-0 now starts at offset 2"), "{out}");
    let o = sluice(
        &b,
        &["topic", "delete-records", "dr", "-p", "0", "--before", "9"],
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("OffsetOutOfRange"));
    let out = ok(&sluice(
        &b,
        &["topic", "delete-records", "dr", "-p", "0", "--before", "-1"],
        None,
    ));
    assert!(out.contains("dr-0 now starts at offset 4"), "{out}");

    sluice_testkit::block_on(async {
        use kafka_protocol::messages::{InitProducerIdRequest, TransactionalId};
        let mut c = sluice_client::Client::connect(&b).await.unwrap();
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId("cli-txn".to_string().into())))
            .with_transaction_timeout_ms(30_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        assert_eq!(c.send(&init, 5).await.unwrap().error_code, 0);
    });
    let out = ok(&sluice(&b, &["txn", "list"], None));
    assert!(out.contains("cli-txn") && out.contains("Empty"), "{out}");
    let out = ok(&sluice(&b, &["txn", "list", "--state", "Ongoing"], None));
    assert!(!out.contains("cli-txn"), "{out}");
    let out = ok(&sluice(&b, &["txn", "describe", "cli-txn"], None));
    assert!(out.contains("state:            Empty"), "{out}");
    assert!(out.contains("timeout ms:       30000"), "{out}");
    let o = sluice(&b, &["txn", "describe", "nope"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("TransactionalIdNotFound"));
    let o = sluice(&b, &["txn", "list", "--state", "Bogus"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown transaction state(s): Bogus"));
}
