//! Consumer group state machine tests: members join, reconcile, leave and time out, driven
//! through heartbeats exactly as a client sends them, with a fixed topic table.

use std::collections::BTreeMap;

use super::*;

/// A fixed set of topics.
struct Topics(BTreeMap<String, (Uuid, i32)>);

impl TopicLookup for Topics {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).copied()
    }
    fn topic_name(&self, id: Uuid) -> Option<String> {
        self.0
            .iter()
            .find(|(_, v)| v.0 == id)
            .map(|(k, _)| k.clone())
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

const T: Uuid = Uuid::from_u128(7);

fn topics(partitions: i32) -> Topics {
    Topics(BTreeMap::from([("t".to_string(), (T, partitions))]))
}

fn join(id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Vec::new()),
        version: 1,
        ..HeartbeatRequest::default()
    }
}

/// A heartbeat reporting `owned` at `epoch`.
fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: id.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(
            owned
                .iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect(),
        ),
        version: 1,
        ..HeartbeatRequest::default()
    }
}

/// A client: remembers its epoch and assignment, revokes at once.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn step(&mut self, groups: &ConsumerGroups, t: &Topics, now: i64) -> HeartbeatResponse {
        let req = if self.epoch == 0 {
            join(&self.id)
        } else {
            beat(&self.id, self.epoch, &self.owned)
        };
        let r = groups
            .heartbeat("g", req, false, t, now)
            .expect("heartbeat");
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a.clone();
        }
        r
    }

    fn count(&self) -> usize {
        self.owned.values().map(|s| s.len()).sum()
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.to_string(),
        epoch: 0,
        owned: Assignment::new(),
    }
}

fn settle(clients: &mut [Client], groups: &ConsumerGroups, t: &Topics, now: i64) {
    for _ in 0..10 {
        for c in clients.iter_mut() {
            c.step(groups, t, now);
        }
    }
}

fn assert_disjoint_cover(clients: &[Client], partitions: i32) {
    let mut all: Vec<i32> = clients
        .iter()
        .flat_map(|c| c.owned.get(&T).into_iter().flatten().copied())
        .collect();
    all.sort();
    assert_eq!(all, (0..partitions).collect::<Vec<_>>());
}

#[test]
fn three_members_split_six_partitions_and_take_over_when_one_leaves() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(6);
    let mut cs = vec![client("a"), client("b"), client("c")];
    settle(&mut cs, &groups, &t, 0);
    for c in &cs {
        assert_eq!(c.count(), 2, "{}", c.id);
    }
    assert_disjoint_cover(&cs, 6);
    let g = groups.get("g").unwrap();
    assert_eq!(g.lock().unwrap().state(), ConsumerGroupState::Stable);

    let leave = HeartbeatRequest {
        member_id: "c".into(),
        member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
        version: 1,
        ..HeartbeatRequest::default()
    };
    let r = groups.heartbeat("g", leave, false, &t, 0).unwrap();
    assert_eq!(r.member_epoch, -1);
    cs.pop();
    settle(&mut cs, &groups, &t, 0);
    assert_eq!(cs[0].count() + cs[1].count(), 6);
    assert_eq!(cs[0].count(), 3);
    assert_disjoint_cover(&cs, 6);
}

#[test]
fn a_partition_reaches_its_new_owner_only_after_revocation() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(2);
    let mut a = client("a");
    a.step(&groups, &t, 0);
    assert_eq!(a.count(), 2);
    let mut b = client("b");
    let r = b.step(&groups, &t, 0);
    // b's partition is still owned by a: b waits with nothing.
    assert_eq!(b.count(), 0);
    assert!(r.member_epoch > 0);
    let member_b = groups.get("g").unwrap().lock().unwrap().members()["b"].clone();
    assert_eq!(member_b.state, MemberState::UnreleasedPartitions);
    // a is asked to revoke one partition: its assignment shrinks, its epoch stays.
    let epoch_a = a.epoch;
    a.step(&groups, &t, 0);
    assert_eq!(a.count(), 1);
    assert_eq!(a.epoch, epoch_a);
    // a acknowledges (reports owning only one) and moves to the new epoch.
    a.step(&groups, &t, 0);
    assert!(a.epoch > epoch_a);
    b.step(&groups, &t, 0);
    assert_eq!(b.count(), 1);
    assert_disjoint_cover(&[a, b], 2);
}

#[test]
fn wrong_epochs_are_fenced_and_unknown_members_rejected() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(1);
    let mut a = client("a");
    a.step(&groups, &t, 0);
    let e = groups
        .heartbeat("g", beat("a", a.epoch + 5, &a.owned), false, &t, 0)
        .unwrap_err();
    assert_eq!(e.0, ResponseError::FencedMemberEpoch);
    let e = groups
        .heartbeat("g", beat("zz", 3, &Assignment::new()), false, &t, 0)
        .unwrap_err();
    assert_eq!(e.0, ResponseError::UnknownMemberId);
    let e = groups
        .heartbeat("nope", beat("a", 1, &Assignment::new()), false, &t, 0)
        .unwrap_err();
    assert_eq!(e.0, ResponseError::UnknownMemberId);
}

#[test]
fn bad_requests_get_kafkas_errors() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(1);
    let mut r = join("a");
    r.server_assignor = Some("sticky".into());
    let e = groups.heartbeat("g", r, false, &t, 0).unwrap_err();
    assert_eq!(e.0, ResponseError::UnsupportedAssignor);
    let mut r = join("a");
    r.rebalance_timeout_ms = -1;
    assert_eq!(
        groups.heartbeat("g", r, false, &t, 0).unwrap_err().0,
        ResponseError::InvalidRequest
    );
    let mut r = join("a");
    r.member_epoch = -3;
    assert_eq!(
        groups.heartbeat("g", r, false, &t, 0).unwrap_err().0,
        ResponseError::InvalidRequest
    );
    let r = join("");
    assert_eq!(
        groups.heartbeat("g", r, false, &t, 0).unwrap_err().0,
        ResponseError::InvalidRequest
    );
    let mut r = join("a");
    r.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        groups.heartbeat("g", r, false, &t, 0).unwrap_err().0,
        ResponseError::InvalidRegularExpression
    );
    // A classic group with members holds the id.
    assert_eq!(
        groups.heartbeat("g", join("a"), true, &t, 0).unwrap_err().0,
        ResponseError::GroupIdNotFound
    );
}

#[test]
fn session_timeout_removes_a_silent_member() {
    let cfg = ConsumerGroupConfig {
        session_timeout_ms: 1_000,
        ..ConsumerGroupConfig::default()
    };
    let groups = ConsumerGroups::new(cfg, 100);
    let t = topics(4);
    let mut cs = vec![client("a"), client("b")];
    settle(&mut cs, &groups, &t, 0);
    assert_eq!(cs[0].count(), 2);
    // b goes silent; a keeps heartbeating.
    cs[0].step(&groups, &t, 900);
    groups.tick(&t, 1_500);
    let mut a = cs.remove(0);
    for now in [1_500, 1_600, 1_700] {
        a.step(&groups, &t, now);
    }
    assert_eq!(a.count(), 4);
    assert_eq!(groups.get("g").unwrap().lock().unwrap().members().len(), 1);
}

#[test]
fn static_member_gets_its_partitions_back_without_a_new_epoch() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(2);
    let mut r = join("a");
    r.instance_id = Some("i1".into());
    let first = groups.heartbeat("g", r, false, &t, 0).unwrap();
    let owned = first.assignment.clone().unwrap();
    assert_eq!(owned[&T].len(), 2);
    let leave = HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
        instance_id: Some("i1".into()),
        version: 1,
        ..HeartbeatRequest::default()
    };
    groups.heartbeat("g", leave, false, &t, 0).unwrap();
    // Another member id with the same instance id comes back: same partitions, same epoch.
    let mut r = join("a2");
    r.instance_id = Some("i1".into());
    let back = groups.heartbeat("g", r, false, &t, 0).unwrap();
    assert_eq!(back.assignment.unwrap(), owned);
    assert_eq!(back.member_epoch, first.member_epoch);
    // While a2 holds the instance id, a third member may not take it.
    let mut r = join("a3");
    r.instance_id = Some("i1".into());
    assert_eq!(
        groups.heartbeat("g", r, false, &t, 0).unwrap_err().0,
        ResponseError::UnreleasedInstanceId
    );
}

#[test]
fn new_partitions_trigger_a_new_target_assignment() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let mut cs = vec![client("a"), client("b")];
    settle(&mut cs, &groups, &topics(2), 0);
    assert_eq!(cs[0].count() + cs[1].count(), 2);
    settle(&mut cs, &groups, &topics(4), 0);
    assert_eq!(cs[0].count(), 2);
    assert_disjoint_cover(&cs, 4);
}

#[test]
fn offset_commits_check_member_and_epoch() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let t = topics(1);
    assert_eq!(groups.validate_commit("g", "", -1), None);
    let mut a = client("a");
    a.step(&groups, &t, 0);
    assert_eq!(groups.validate_commit("g", "a", a.epoch), Some(Ok(())));
    assert_eq!(
        groups.validate_commit("g", "a", a.epoch + 1),
        Some(Err(ResponseError::StaleMemberEpoch))
    );
    assert_eq!(
        groups.validate_commit("g", "", -1),
        Some(Err(ResponseError::UnknownMemberId))
    );
    assert_eq!(groups.validate_fetch("g", None, -1), Ok(()));
    assert_eq!(
        groups.validate_fetch("g", Some("a"), a.epoch - 1),
        Err(ResponseError::StaleMemberEpoch)
    );
}

/// Goal: a regex subscription is resolved apart from the heartbeat, as Kafka does: the
/// heartbeat that brings a new regex assigns the literal topics only, the regex's topics come
/// with a heartbeat after the coordinator's timer resolved it, and a topic created later that
/// matches is added at the next refresh.
#[test]
fn regex_subscriptions_are_resolved_by_the_timer() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default(), 100);
    let a = Uuid::from_u128(1);
    let r1 = Uuid::from_u128(2);
    let r2 = Uuid::from_u128(3);
    let mut t = Topics(BTreeMap::from([
        ("topic_a".to_string(), (a, 2)),
        ("topic_regex1".to_string(), (r1, 4)),
    ]));
    let mut req = join("m");
    req.subscribed_topic_names = Some(vec!["topic_a".to_string()]);
    req.subscribed_topic_regex = Some("^.*topic_regex.*".to_string());
    let r = groups.heartbeat("g", req, false, &t, 0).unwrap();
    let first = r.assignment.unwrap();
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), vec![a]);
    groups.tick(&t, 100);
    let mut c = Client {
        id: "m".into(),
        epoch: r.member_epoch,
        owned: first,
    };
    c.step(&groups, &t, 200);
    assert_eq!(c.owned.keys().copied().collect::<Vec<_>>(), vec![a, r1]);
    assert_eq!(c.count(), 6);
    // A new matching topic is picked up at the next refresh.
    t.0.insert("topic_regex2".to_string(), (r2, 1));
    groups.tick(&t, 300);
    c.step(&groups, &t, 400);
    assert_eq!(c.count(), 6, "not before the refresh interval");
    groups.tick(&t, 1_200);
    c.step(&groups, &t, 1_300);
    assert_eq!(c.count(), 7);
    // Leave and subscribe again at once: the regex is resolved afresh, after the heartbeat.
    let leave = HeartbeatRequest {
        member_id: "m".into(),
        member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
        version: 1,
        ..HeartbeatRequest::default()
    };
    groups.heartbeat("g", leave, false, &t, 1_400).unwrap();
    let mut req = join("m");
    req.subscribed_topic_names = Some(vec!["topic_a".to_string()]);
    req.subscribed_topic_regex = Some("^.*topic_regex.*".to_string());
    let r = groups.heartbeat("g", req, false, &t, 1_401).unwrap();
    assert_eq!(
        r.assignment.unwrap().keys().copied().collect::<Vec<_>>(),
        vec![a]
    );
}
