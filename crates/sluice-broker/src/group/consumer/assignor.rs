//! Server-side assignors of the consumer group protocol (KIP-848): `uniform` (Kafka's default)
//! and `range`, selected by `group.consumer.assignors` and a member's `server_assignor`.
//!
//! An assignor maps every member to the partitions it should own, given each member's
//! subscribed topics, the partitions those topics have and the previous target assignment. It
//! is pure: the group calls it when its epoch moves past its assignment epoch.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Most partitions moved by the uniform assignor's balancing pass (bounds the loop; a group
/// needs far fewer moves than this to balance).
const BALANCE_MOVES_MAX: usize = 1_000_000;

/// The assignors this broker has, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky: every member gets as many partitions as the others (±1 among
    /// members with the same subscription) and keeps what it had where it can.
    Uniform,
    /// Per topic, contiguous ranges of partitions to the members subscribed to it, ordered by
    /// instance id (or member id), so co-partitioned topics line up.
    Range,
}

impl Assignor {
    /// The assignor called `name`, if the broker has it.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// Kafka's name of the assignor.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// One member as the assignor sees it.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, which orders members for the range assignor when present.
    pub instance_id: Option<String>,
    /// Topic ids the member subscribes to that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment.
    pub previous: Assignment,
}

/// Computes the target assignment of `members` over `topics` (topic id → partition count).
pub fn assign(
    assignor: Assignor,
    members: &[MemberSpec],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        Assignor::Uniform => uniform(members, topics),
        Assignor::Range => range(members, topics),
    }
}

fn range(members: &[MemberSpec], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for (topic, count) in topics {
        let mut subscribers: Vec<&MemberSpec> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_by(|a, b| {
            let key = |m: &MemberSpec| (m.instance_id.clone(), m.member_id.clone());
            key(a).cmp(&key(b))
        });
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let len = base + i32::from((i as i32) < extra);
            if len == 0 {
                continue;
            }
            let set = out
                .entry(m.member_id.clone())
                .or_default()
                .entry(*topic)
                .or_default();
            set.extend(next..next + len);
            next += len;
        }
    }
    out
}

fn uniform(members: &[MemberSpec], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    // Owned (topic, partition) per member index, starting from what each keeps of its
    // previous assignment.
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); members.len()];
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (i, m) in members.iter().enumerate() {
        for (topic, partitions) in &m.previous {
            let Some(count) = topics.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for p in partitions.iter().filter(|p| **p < *count) {
                if taken.insert((*topic, *p)) {
                    owned[i].insert((*topic, *p));
                }
            }
        }
    }
    // Every unowned partition goes to the eligible member with the fewest partitions.
    for (topic, count) in topics {
        for p in 0..*count {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            let best = (0..members.len())
                .filter(|i| members[*i].topics.contains(topic))
                .min_by_key(|i| (owned[*i].len(), *i));
            if let Some(i) = best {
                owned[i].insert((*topic, p));
                taken.insert((*topic, p));
            }
        }
    }
    balance(members, &mut owned);
    members
        .iter()
        .zip(owned)
        .map(|(m, parts)| {
            let mut a = Assignment::new();
            for (t, p) in parts {
                a.entry(t).or_default().insert(p);
            }
            (m.member_id.clone(), a)
        })
        .collect()
}

/// Moves partitions from the most loaded members to less loaded members that subscribe to
/// them until no move lowers the spread (kept partitions move last: the highest-numbered
/// partition of the most loaded member moves first).
fn balance(members: &[MemberSpec], owned: &mut [BTreeSet<(Uuid, i32)>]) {
    for _ in 0..BALANCE_MOVES_MAX {
        let mut moved = false;
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse((owned[*i].len(), std::cmp::Reverse(*i))));
        'donors: for &from in &order {
            let candidates: Vec<(Uuid, i32)> = owned[from].iter().rev().copied().collect();
            for tp in candidates {
                let to = (0..members.len())
                    .filter(|j| *j != from && members[*j].topics.contains(&tp.0))
                    .filter(|j| owned[*j].len() + 1 < owned[from].len())
                    .min_by_key(|j| (owned[*j].len(), *j));
                if let Some(to) = to {
                    owned[from].remove(&tp);
                    owned[to].insert(tp);
                    moved = true;
                    break 'donors;
                }
            }
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[Uuid], previous: Assignment) -> MemberSpec {
        MemberSpec {
            member_id: id.to_string(),
            instance_id: None,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn count(a: &BTreeMap<String, Assignment>, id: &str) -> usize {
        a[id].values().map(|s| s.len()).sum()
    }

    fn all(a: &BTreeMap<String, Assignment>) -> Vec<(Uuid, i32)> {
        let mut v: Vec<(Uuid, i32)> = a
            .values()
            .flat_map(|m| m.iter().flat_map(|(t, ps)| ps.iter().map(|p| (*t, *p))))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn uniform_splits_six_partitions_two_each_disjoint_and_covering() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([(t, 6)]);
        let members: Vec<MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, &[t], Assignment::new()))
            .collect();
        let a = assign(Assignor::Uniform, &members, &topics);
        for id in ["a", "b", "c"] {
            assert_eq!(count(&a, id), 2);
        }
        assert_eq!(all(&a), (0..6).map(|p| (t, p)).collect::<Vec<_>>());
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([(t, 6)]);
        let prev_a: Assignment = BTreeMap::from([(t, BTreeSet::from([0, 1, 2]))]);
        let prev_b: Assignment = BTreeMap::from([(t, BTreeSet::from([3, 4, 5]))]);
        let members = vec![
            member("a", &[t], prev_a.clone()),
            member("b", &[t], prev_b.clone()),
            member("c", &[t], Assignment::new()),
        ];
        let a = assign(Assignor::Uniform, &members, &topics);
        for id in ["a", "b", "c"] {
            assert_eq!(count(&a, id), 2);
        }
        // a and b only give partitions away.
        assert!(a["a"][&t].is_subset(&prev_a[&t]));
        assert!(a["b"][&t].is_subset(&prev_b[&t]));
        assert_eq!(all(&a).len(), 6);
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics = BTreeMap::from([(t1, 4), (t2, 2)]);
        let members = vec![
            member("a", &[t1], Assignment::new()),
            member("b", &[t1, t2], Assignment::new()),
        ];
        let a = assign(Assignor::Uniform, &members, &topics);
        assert!(!a["a"].contains_key(&t2));
        assert_eq!(all(&a).len(), 6);
        assert_eq!(count(&a, "a"), 3);
        assert_eq!(count(&a, "b"), 3);
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let t = Uuid::from_u128(1);
        let topics = BTreeMap::from([(t, 5)]);
        let members = vec![
            member("b", &[t], Assignment::new()),
            member("a", &[t], Assignment::new()),
        ];
        let a = assign(Assignor::Range, &members, &topics);
        assert_eq!(a["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"][&t], BTreeSet::from([3, 4]));
    }

    #[test]
    fn no_members_or_no_topics() {
        let t = Uuid::from_u128(1);
        assert!(assign(Assignor::Uniform, &[], &BTreeMap::from([(t, 3)])).is_empty());
        let members = vec![member("a", &[t], Assignment::new())];
        let a = assign(Assignor::Uniform, &members, &BTreeMap::new());
        assert!(a["a"].is_empty());
    }
}
