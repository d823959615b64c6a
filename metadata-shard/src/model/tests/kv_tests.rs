//! Overlay semantics and command atomicity.

use std::cell::Cell;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn small_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0xff]), 0..4)
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (small_key(), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(k, v)| Op::Put(k, v)),
        small_key().prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// get and scan through an Overlay equal the same operations on a plain BTreeMap,
    /// for every range and limit, and into_writes turns the base into the model.
    #[test]
    fn overlay_matches_btreemap_model(
        base_ops in prop::collection::vec(op(), 0..40),
        overlay_ops in prop::collection::vec(op(), 0..40),
        ranges in prop::collection::vec((small_key(), small_key(), 0usize..50), 1..10),
    ) {
        let mut base = MemKv::new();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in &base_ops {
            match op {
                Op::Put(k, v) => { base.put(k, v); model.insert(k.clone(), v.clone()); }
                Op::Delete(k) => { base.delete(k); model.remove(k); }
            }
        }
        let before = base.clone();
        let mut overlay = Overlay::new(&base);
        for op in &overlay_ops {
            match op {
                Op::Put(k, v) => { overlay.put(k, v); model.insert(k.clone(), v.clone()); }
                Op::Delete(k) => { overlay.delete(k); model.remove(k); }
            }
        }
        for (start, end, limit) in &ranges {
            let expected: Vec<(Vec<u8>, Vec<u8>)> = if start < end {
                model.range(start.clone()..end.clone()).take(*limit).map(|(k, v)| (k.clone(), v.clone())).collect()
            } else {
                Vec::new()
            };
            prop_assert_eq!(overlay.scan(start, end, *limit).unwrap(), expected);
            prop_assert_eq!(overlay.get(start).unwrap(), model.get(start).cloned());
        }
        let writes = overlay.into_writes();
        prop_assert_eq!(&base, &before, "the overlay never writes through");
        for (k, v) in writes {
            match v { Some(v) => base.put(&k, &v), None => base.delete(&k) }
        }
        prop_assert_eq!(base.map, model);
    }
}

/// Big scans through an overlay that deleted most of a full base batch still return
/// everything after the deletions (the batch-bounded merge).
#[test]
fn overlay_scan_crosses_deleted_batches() {
    let mut base = MemKv::new();
    for i in 0u32..5000 {
        base.put(&i.to_be_bytes(), b"v");
    }
    let mut overlay = Overlay::new(&base);
    for i in 0u32..4990 {
        overlay.delete(&i.to_be_bytes());
    }
    overlay.put(&[0xff], b"new");
    let rows = overlay.scan(&[], &[0xff, 0xff], 100).unwrap();
    let keys: Vec<Vec<u8>> = rows.into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<Vec<u8>> = (4990u32..5000).map(|i| i.to_be_bytes().to_vec()).collect();
    expected.push(vec![0xff]);
    assert_eq!(keys, expected);
}

/// A store whose reads start failing after a budget of calls: a command that fails
/// half-way through (after it has buffered writes) must leave the store untouched.
struct FailingKv {
    inner: MemKv,
    reads_left: Cell<usize>,
}

impl FailingKv {
    fn spend(&self) -> Result<(), KvError> {
        match self.reads_left.get() {
            0 => Err(KvError::Backend("injected failure".into())),
            n => {
                self.reads_left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl KvRead for FailingKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.spend()?;
        self.inner.get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        self.spend()?;
        self.inner.scan(start, end, limit)
    }
}

impl KvWrite for FailingKv {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        self.inner.delete(key)
    }
}

#[test]
fn failed_command_leaves_base_untouched() {
    let mut kv = MemKv::new();
    for i in 0..40 {
        commit(&mut kv, &format!("/src/d{}/f{i}", i % 4), &[chunk(i)], i);
    }
    run(
        &mut kv,
        ShardCommand::Share {
            owner: ALICE.into(),
            path: "/src/d1".into(),
            grantee: BOB.into(),
            permission: Permission::View,
            expires_at_ms: None,
            device_id: "dev1".into(),
            now_ms: T0,
        },
    );
    let commands = [
        ShardCommand::Move {
            user_id: ALICE.into(),
            from: "/src".into(),
            to: "/x/y/dst".into(),
            device_id: "d".into(),
            now_ms: T0,
        },
        ShardCommand::Delete { user_id: ALICE.into(), path: "/src".into(), device_id: "d".into(), now_ms: T0 },
        ShardCommand::CommitVersion(commit_cmd("/new/a/b/file", &[chunk(1), chunk(99)], 7, None, "d")),
    ];
    for cmd in commands {
        let mut expected = kv.clone();
        let expected_response = apply(&mut expected, &cmd, &cfg()).unwrap();
        let mut failures = 0;
        for budget in 0.. {
            let mut failing = FailingKv { inner: kv.clone(), reads_left: Cell::new(budget) };
            match apply(&mut failing, &cmd, &cfg()) {
                Err(ModelError::Kv(_)) => {
                    failures += 1;
                    assert_eq!(failing.inner, kv, "{cmd:?} failed after {budget} reads but wrote something");
                }
                Err(other) => panic!("unexpected {other}"),
                Ok(response) => {
                    assert_eq!(response, expected_response);
                    assert_eq!(failing.inner, expected);
                    break;
                }
            }
        }
        assert!(failures > 3, "the command should fail at several points, failed at {failures}");
    }
}

#[test]
fn rejected_command_changes_nothing() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/b/c", &[chunk(2)], 2);
    let before = kv.clone();
    let err = try_run(&mut kv, ShardCommand::CommitVersion(commit_cmd("/b/c/d/e", &[chunk(3)], 3, None, "d")));
    assert!(matches!(err, Err(ModelError::NotAFolder(p)) if p == "/b/c"));
    assert_eq!(kv, before);
}
