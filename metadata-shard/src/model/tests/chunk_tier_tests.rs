//! Chunk location records: compare-and-set moves, lookups and pages.

use super::*;

fn mv(n: u64, expect_generation: u64, tier: &str, moved_at_ms: i64) -> ChunkTierMove {
    ChunkTierMove { hash: hash(n), expect_generation, tier: tier.into(), moved_at_ms }
}

fn move_tiers(kv: &mut MemKv, moves: Vec<ChunkTierMove>) -> Vec<ChunkTierOutcome> {
    match run(kv, ShardCommand::MoveChunkTiers { moves }) {
        ShardResponse::ChunkTierMoves(outcomes) => outcomes,
        other => panic!("unexpected {other:?}"),
    }
}

fn tiers_of(kv: &MemKv, ns: &[u64]) -> Vec<Option<ChunkTier>> {
    match query(kv, &ShardQuery::ChunkTiers { hashes: ns.iter().map(|n| hash(*n)).collect() }).unwrap() {
        QueryResponse::ChunkTiers(records) => records,
        other => panic!("unexpected {other:?}"),
    }
}

fn page(kv: &MemKv, after: Option<Hash32>, limit: u32) -> (Vec<(Hash32, ChunkTier)>, bool) {
    match query(kv, &ShardQuery::ListChunkTiers { after, limit }).unwrap() {
        QueryResponse::ChunkTierPage { entries, has_more } => (entries, has_more),
        other => panic!("unexpected {other:?}"),
    }
}

fn record(tier: &str, generation: u64, moved_at_ms: i64) -> ChunkTier {
    ChunkTier { tier: tier.into(), generation, moved_at_ms }
}

#[test]
fn moves_are_compare_and_set_on_the_generation() {
    let mut kv = MemKv::new();
    assert_eq!(tiers_of(&kv, &[1]), [None], "never moved: no record");

    // From "no record" (generation 0).
    assert_eq!(move_tiers(&mut kv, vec![mv(1, 0, "warm", T0)]), [ChunkTierOutcome::Moved { generation: 1 }]);
    assert_eq!(tiers_of(&kv, &[1]), [Some(record("warm", 1, T0))]);

    // A second mover that read "no record" lost the race: nothing changes.
    let before = kv.clone();
    assert_eq!(
        move_tiers(&mut kv, vec![mv(1, 0, "cold", T0 + 5)]),
        [ChunkTierOutcome::Stale { current: Some(record("warm", 1, T0)) }]
    );
    assert_eq!(kv, before);
    // Ahead of the record is stale too.
    assert_eq!(
        move_tiers(&mut kv, vec![mv(1, 7, "cold", T0 + 5)]),
        [ChunkTierOutcome::Stale { current: Some(record("warm", 1, T0)) }]
    );
    assert_eq!(kv, before);
    // A record that does not exist is stale for any expectation but 0.
    assert_eq!(move_tiers(&mut kv, vec![mv(2, 1, "cold", T0)]), [ChunkTierOutcome::Stale { current: None }]);
    assert_eq!(kv, before);

    // Generations only grow: demote further, promote back, demote again.
    assert_eq!(move_tiers(&mut kv, vec![mv(1, 1, "cold", T0 + 10)]), [ChunkTierOutcome::Moved { generation: 2 }]);
    assert_eq!(move_tiers(&mut kv, vec![mv(1, 2, "hot", T0 + 20)]), [ChunkTierOutcome::Moved { generation: 3 }]);
    assert_eq!(tiers_of(&kv, &[1]), [Some(record("hot", 3, T0 + 20))], "back in the first tier, record kept");
    assert_eq!(move_tiers(&mut kv, vec![mv(1, 3, "warm", T0 + 30)]), [ChunkTierOutcome::Moved { generation: 4 }]);
    // An old generation never commits again.
    for old in 0..4 {
        assert!(matches!(
            move_tiers(&mut kv, vec![mv(1, old, "cold", T0 + 40)])[..],
            [ChunkTierOutcome::Stale { current: Some(ChunkTier { generation: 4, .. }) }]
        ));
    }
}

#[test]
fn a_batch_applies_in_order_and_answers_in_order() {
    let mut kv = MemKv::new();
    move_tiers(&mut kv, vec![mv(3, 0, "warm", T0)]);
    let outcomes = move_tiers(
        &mut kv,
        vec![
            mv(5, 0, "warm", T0 + 1),
            mv(3, 0, "cold", T0 + 1),
            mv(3, 1, "cold", T0 + 1),
            // Sees the move just before it in the same batch.
            mv(3, 1, "hot", T0 + 1),
            mv(3, 2, "hot", T0 + 1),
            mv(4, 0, "cold", T0 + 1),
        ],
    );
    assert_eq!(
        outcomes,
        [
            ChunkTierOutcome::Moved { generation: 1 },
            ChunkTierOutcome::Stale { current: Some(record("warm", 1, T0)) },
            ChunkTierOutcome::Moved { generation: 2 },
            ChunkTierOutcome::Stale { current: Some(record("cold", 2, T0 + 1)) },
            ChunkTierOutcome::Moved { generation: 3 },
            ChunkTierOutcome::Moved { generation: 1 },
        ]
    );
    assert_eq!(
        tiers_of(&kv, &[4, 9, 3, 5]),
        [Some(record("cold", 1, T0 + 1)), None, Some(record("hot", 3, T0 + 1)), Some(record("warm", 1, T0 + 1))]
    );

    // Replicas applying the same moves hold the same bytes.
    let mut replica = MemKv::new();
    move_tiers(&mut replica, vec![mv(3, 0, "warm", T0)]);
    let cmd = ShardCommand::MoveChunkTiers {
        moves: vec![
            mv(5, 0, "warm", T0 + 1),
            mv(3, 0, "cold", T0 + 1),
            mv(3, 1, "cold", T0 + 1),
            mv(3, 1, "hot", T0 + 1),
            mv(3, 2, "hot", T0 + 1),
            mv(4, 0, "cold", T0 + 1),
        ],
    };
    let bytes = postcard::to_allocvec(&cmd).unwrap();
    assert_eq!(postcard::from_bytes::<ShardCommand>(&bytes).unwrap(), cmd);
    run(&mut replica, cmd);
    assert_eq!(replica, kv);
}

#[test]
fn bad_batches_are_refused_whole() {
    let mut kv = MemKv::new();
    move_tiers(&mut kv, vec![mv(1, 0, "warm", T0)]);
    let before = kv.clone();
    let err = try_run(&mut kv, ShardCommand::MoveChunkTiers { moves: vec![mv(2, 0, "cold", T0), mv(3, 0, "", T0)] });
    assert!(matches!(err, Err(ModelError::InvalidArgument(_))), "{err:?}");
    assert_eq!(kv, before);
    let too_many = (0..1001).map(|n| mv(100 + n, 0, "cold", T0)).collect();
    let err = try_run(&mut kv, ShardCommand::MoveChunkTiers { moves: too_many });
    assert!(matches!(err, Err(ModelError::InvalidArgument(_))), "{err:?}");
    assert_eq!(kv, before);
    let most = (0..1000).map(|n| mv(100 + n, 0, "cold", T0)).collect();
    assert_eq!(move_tiers(&mut kv, most).len(), 1000);
    assert_eq!(move_tiers(&mut kv, vec![]), [], "an empty batch is fine");

    let hashes = (0..1001).map(hash).collect();
    let err = query(&kv, &ShardQuery::ChunkTiers { hashes });
    assert!(matches!(err, Err(ModelError::InvalidArgument(_))), "{err:?}");
}

#[test]
fn records_page_in_hash_order() {
    let mut kv = MemKv::new();
    // Neighbouring keyspaces must not leak into the pages.
    commit(&mut kv, "/f", &[chunk(1), chunk(2)], 1);
    let ns = [40u64, 7, 13, 2, 99, 1, 56];
    move_tiers(&mut kv, ns.iter().map(|n| mv(*n, 0, "warm", T0 + *n as i64)).collect());
    let mut expected: Vec<(Hash32, ChunkTier)> =
        ns.iter().map(|n| (hash(*n), record("warm", 1, T0 + *n as i64))).collect();
    expected.sort_by_key(|(h, _)| *h);

    let (all, has_more) = page(&kv, None, 0);
    assert_eq!((all.len(), has_more), (1, true), "limit 0 is clamped to 1");
    let (all, has_more) = page(&kv, None, u32::MAX);
    assert_eq!((all, has_more), (expected.clone(), false), "a huge limit is clamped to 1000");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (entries, has_more) = page(&kv, after, 3);
        assert!(entries.len() <= 3);
        after = entries.last().map(|(h, _)| *h);
        seen.extend(entries);
        if !has_more {
            break;
        }
    }
    assert_eq!(seen, expected);
    let (rest, has_more) = page(&kv, Some(expected[6].0), 3);
    assert_eq!((rest.len(), has_more), (0, false));
    let (rest, has_more) = page(&kv, Some(expected[4].0), 2);
    assert_eq!((rest, has_more), (expected[5..].to_vec(), false));
    let (rest, has_more) = page(&kv, Some(expected[3].0), 2);
    assert_eq!((rest, has_more), (expected[4..6].to_vec(), true));
    // An `after` that has no record of its own works too.
    let (rest, _) = page(&kv, Some(hash(3)), 1000);
    assert_eq!(rest, expected.iter().filter(|(h, _)| *h > hash(3)).cloned().collect::<Vec<_>>());
}
