//! The controller's state machine against an image built by replay, as the quorum would.

use super::*;

fn fixed() -> PlacementStart {
    PlacementStart {
        start_index: 0,
        shift: 0,
    }
}

/// An image with brokers `ids` registered and unfenced, with the given racks.
fn cluster(brokers: &[(i32, Option<&str>)]) -> MetadataImage {
    let mut image = MetadataImage::empty();
    for (id, rack) in brokers {
        let offset = image.offset + 1;
        let reg = Registration {
            broker_id: *id,
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![],
            rack: rack.map(str::to_string),
            log_dirs: vec![],
        };
        apply(&mut image, vec![register_broker(&reg, offset)]);
        let records = unfence_broker(&image, *id, offset).unwrap();
        apply(&mut image, records);
    }
    image
}

fn apply(image: &mut MetadataImage, records: Vec<MetadataRecord>) {
    for r in records {
        let offset = image.offset + 1;
        image.replay(&r, offset).unwrap();
    }
}

#[test]
fn topics_get_distinct_replicas_led_by_the_first() {
    let mut image = cluster(&[(1, None), (2, None), (3, None)]);
    let records = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(6, 3),
        PlacementStart::random(),
        &BTreeMap::new(),
    )
    .unwrap();
    apply(&mut image, records);
    let topic = image.topic("t").unwrap();
    assert_eq!(topic.partitions.len(), 6);
    let mut leaders = BTreeMap::new();
    for p in &topic.partitions {
        let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    // Leaders spread evenly: 2 partitions each.
    assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
}

#[test]
fn replicas_land_on_distinct_racks_when_racks_are_set() {
    let image = cluster(&[
        (1, Some("a")),
        (2, Some("a")),
        (3, Some("b")),
        (4, Some("b")),
        (5, Some("c")),
        (6, Some("c")),
    ]);
    let racks: BTreeMap<i32, &str> = image
        .brokers
        .values()
        .map(|b| (b.id, b.rack.as_deref().unwrap()))
        .collect();
    for start in 0..6 {
        for shift in 0..6 {
            let start = PlacementStart {
                start_index: start,
                shift,
            };
            let records = create_topic(
                &image,
                "t",
                Uuid::new_v4(),
                &Placement::auto(12, 3),
                start,
                &BTreeMap::new(),
            )
            .unwrap();
            for r in records {
                if let MetadataRecord::Partition(p) = r {
                    let used: BTreeSet<&str> = p.replicas.iter().map(|id| racks[id]).collect();
                    assert_eq!(used.len(), 3, "{:?} at {start:?}", p.replicas);
                }
            }
        }
    }
}

#[test]
fn replication_factor_above_the_live_brokers_is_refused_with_kafkas_message() {
    let image = cluster(&[(1, None)]);
    let err = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(1, 3),
        fixed(),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ControllerError::InvalidReplicationFactor(
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 \
             cannot be reached because only 1 broker(s) are registered."
                .into()
        )
    );
    let err = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(0, 1),
        fixed(),
        &BTreeMap::new(),
    );
    assert!(matches!(err, Err(ControllerError::InvalidPartitions(_))));
}

#[test]
fn fenced_brokers_get_no_new_replicas_and_lead_nothing() {
    let mut image = cluster(&[(1, None), (2, None)]);
    let reg = Registration {
        broker_id: 3,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![],
        rack: None,
        log_dirs: vec![],
    };
    let offset = image.offset + 1;
    apply(&mut image, vec![register_broker(&reg, offset)]);
    assert!(!image.broker_is_live(3));
    let err = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(3, 3),
        fixed(),
        &BTreeMap::new(),
    );
    assert!(matches!(
        err,
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    // A manual assignment may name it, but it is neither leader nor in the ISR.
    let records = create_topic(
        &image,
        "m",
        Uuid::new_v4(),
        &Placement::Manual(vec![vec![3, 1], vec![2, 3]]),
        fixed(),
        &BTreeMap::new(),
    )
    .unwrap();
    apply(&mut image, records);
    let t = image.topic("m").unwrap();
    assert_eq!(
        (t.partitions[0].leader, t.partitions[0].isr.clone()),
        (1, vec![1])
    );
    assert_eq!(
        (t.partitions[1].leader, t.partitions[1].isr.clone()),
        (2, vec![2])
    );
}

#[test]
fn manual_assignments_are_checked_as_kafka_does() {
    let image = cluster(&[(1, None), (2, None)]);
    let manual = |lists: Vec<Vec<i32>>| {
        create_topic(
            &image,
            "t",
            Uuid::new_v4(),
            &Placement::Manual(lists),
            fixed(),
            &BTreeMap::new(),
        )
    };
    assert!(matches!(
        manual(vec![vec![1, 9]]),
        Err(ControllerError::InvalidReplicaAssignment(m)) if m.contains("broker 9")
    ));
    assert!(matches!(
        manual(vec![vec![1, 1]]),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        manual(vec![vec![1, 2], vec![1]]),
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(manual(vec![vec![2, 1], vec![1, 2]]).is_ok());
}

#[test]
fn partitions_added_keep_the_replication_factor_and_configs_replace_whole() {
    let mut image = cluster(&[(1, None), (2, None), (3, None)]);
    let mut configs = BTreeMap::from([
        ("retention.ms".to_string(), "1000".to_string()),
        ("cleanup.policy".to_string(), "compact".to_string()),
    ]);
    let records = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(2, 2),
        fixed(),
        &configs,
    )
    .unwrap();
    apply(&mut image, records);
    assert_eq!(image.configs(RESOURCE_TOPIC, "t"), configs);
    let records = create_partitions(&image, "t", 5, None, fixed()).unwrap();
    apply(&mut image, records);
    let t = image.topic("t").unwrap();
    assert_eq!(t.partitions.len(), 5);
    assert!(t.partitions.iter().all(|p| p.replicas.len() == 2));
    assert!(matches!(
        create_partitions(&image, "t", 5, None, fixed()),
        Err(ControllerError::InvalidPartitions(_))
    ));

    configs.remove("retention.ms");
    configs.insert("segment.bytes".into(), "1048576".into());
    let records = replace_topic_configs(&image, "t", &configs).unwrap();
    assert_eq!(
        records.len(),
        2,
        "one removal, one new value, nothing for the unchanged one"
    );
    apply(&mut image, records);
    assert_eq!(image.configs(RESOURCE_TOPIC, "t"), configs);

    let record = delete_topic(&image, "t").unwrap();
    apply(&mut image, vec![record]);
    assert!(image.topic("t").is_none());
    assert!(image.configs(RESOURCE_TOPIC, "t").is_empty());
    assert!(matches!(
        delete_topic(&image, "t"),
        Err(ControllerError::UnknownTopic(_))
    ));
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut image = cluster(&[(1, None)]);
    let mut seen: Vec<std::ops::Range<i64>> = Vec::new();
    for _ in 0..5 {
        let (record, block) = allocate_producer_ids(&image, 1, 0);
        apply(&mut image, vec![record]);
        assert!(seen.iter().all(|b| b.end <= block.start));
        assert_eq!(block.end - block.start, PRODUCER_ID_BLOCK_SIZE);
        seen.push(block);
    }
    assert_eq!(image.next_producer_id, 5 * PRODUCER_ID_BLOCK_SIZE);
}

#[test]
fn unfencing_a_broker_elects_it_where_a_partition_had_no_leader() {
    let mut image = cluster(&[(1, None)]);
    let records = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(2, 1),
        fixed(),
        &BTreeMap::new(),
    )
    .unwrap();
    apply(&mut image, records);
    let topic_id = image.topic("t").unwrap().id;
    // The broker restarts: a new registration fences it and its partitions lose their leader.
    let epoch = image.offset + 1;
    let reg = Registration {
        broker_id: 1,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![],
        rack: None,
        log_dirs: vec![],
    };
    apply(&mut image, vec![register_broker(&reg, epoch)]);
    for p in 0..2 {
        apply(
            &mut image,
            vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: p,
                topic_id,
                leader: Some(NO_LEADER),
                ..Default::default()
            })],
        );
    }
    assert!(matches!(
        unfence_broker(&image, 1, epoch - 1),
        Err(ControllerError::StaleBroker(_))
    ));
    let records = unfence_broker(&image, 1, epoch).unwrap();
    apply(&mut image, records);
    let t = image.topic("t").unwrap();
    assert!(t
        .partitions
        .iter()
        .all(|p| p.leader == 1 && p.leader_epoch == 2));
    assert!(image.broker_is_live(1));
}

#[test]
fn a_change_that_breaks_partition_invariants_does_not_replay() {
    let mut image = cluster(&[(1, None), (2, None)]);
    let records = create_topic(
        &image,
        "t",
        Uuid::new_v4(),
        &Placement::auto(1, 2),
        fixed(),
        &BTreeMap::new(),
    )
    .unwrap();
    apply(&mut image, records);
    let topic_id = image.topic("t").unwrap().id;
    let before = image.clone();
    let outside_isr = MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id,
        isr: Some(vec![1, 7]),
        ..Default::default()
    });
    assert!(image.replay(&outside_isr, 100).is_err());
    assert_eq!(image, before, "a refused record leaves the image as it was");
}

#[test]
fn fencing_moves_leaderships_to_the_next_in_sync_replica_and_unfencing_brings_the_rest_back() {
    let mut image = cluster(&[(1, None), (2, None), (3, None)]);
    let rf3 = create_topic(
        &image,
        "rf3",
        Uuid::new_v4(),
        &Placement::auto(3, 3),
        fixed(),
        &BTreeMap::new(),
    );
    apply(&mut image, rf3.unwrap());
    let rf1 = create_topic(
        &image,
        "rf1",
        Uuid::new_v4(),
        &Placement::auto(3, 1),
        fixed(),
        &BTreeMap::new(),
    );
    apply(&mut image, rf1.unwrap());
    let epoch = image.brokers[&1].epoch;
    assert!(matches!(
        fence_broker(&image, 1, epoch + 100, false),
        Err(ControllerError::StaleBroker(_))
    ));
    let before = image.clone();
    let records = fence_broker(&image, 1, epoch, false).unwrap();
    apply(&mut image, records);
    assert!(!image.broker_is_live(1));
    for (i, p) in image.topic("rf3").unwrap().partitions.iter().enumerate() {
        let old = &before.topic("rf3").unwrap().partitions[i];
        assert!(!p.isr.contains(&1), "{p:?}");
        assert_ne!(p.leader, 1);
        assert!(p.isr.contains(&p.leader));
        let moved = old.leader == 1;
        assert_eq!(p.leader_epoch, old.leader_epoch + i32::from(moved));
    }
    for p in &image.topic("rf1").unwrap().partitions {
        if p.replicas == [1] {
            assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
        } else {
            assert_ne!(p.leader, NO_LEADER);
        }
    }
    // Fencing twice changes nothing.
    assert!(fence_broker(&image, 1, epoch, false).unwrap().is_empty());
    let records = unfence_broker(&image, 1, epoch).unwrap();
    apply(&mut image, records);
    assert!(image.broker_is_live(1));
    assert!(image
        .topic("rf1")
        .unwrap()
        .partitions
        .iter()
        .all(|p| p.leader == p.replicas[0]));
    // A controlled shutdown marks the broker as shutting down too.
    let records = fence_broker(&image, 2, image.brokers[&2].epoch, true).unwrap();
    apply(&mut image, records);
    assert!(image.brokers[&2].fenced && image.brokers[&2].in_controlled_shutdown);
}
