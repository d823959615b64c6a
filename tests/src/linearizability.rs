//! A linearizability checker for histories of operations on independent
//! registers (Wing & Gong search with memoization, as in Knossos and
//! Porcupine), specialised to Tessera's versioned files.
//!
//! A register is one file path; its state is the current version number
//! (0 = absent). Operations: read the version, commit blindly (version + 1),
//! and commit with a base version (compare-and-set: succeeds only when the
//! current version equals the base). Histories are checked per register
//! (linearizability is compositional), each by a depth-first search over
//! which pending operation takes effect next, memoizing (done set, state).

use std::collections::{BTreeMap, HashSet};

/// What an operation did, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read returned this version (0 = absent).
    Read(u64),
    /// Blind commit produced this version.
    Write(u64),
    /// Commit on `base` produced `Some(new version)` or was refused (`None`).
    Cas { base: u64, result: Option<u64> },
    /// A commit whose answer never came (timeout, crash): it may have taken
    /// effect at any point after it started, or not at all. `base: None`
    /// for a blind commit.
    Unknown { base: Option<u64> },
}

/// One operation with its real-time interval (any monotonic clock).
#[derive(Debug, Clone)]
pub struct Event {
    pub key: String,
    pub invoked: u128,
    /// `None` for operations that never completed.
    pub completed: Option<u128>,
    pub op: Op,
}

/// Applies `op` to `state`; `None` if the observed result is impossible here.
fn step(state: u64, op: Op) -> Option<u64> {
    match op {
        Op::Read(v) => (v == state).then_some(state),
        Op::Write(v) => (v == state + 1).then_some(v),
        Op::Cas { base, result: Some(v) } => (base == state && v == state + 1).then_some(v),
        Op::Cas { base, result: None } => (base != state).then_some(state),
        Op::Unknown { base: None } => Some(state + 1),
        Op::Unknown { base: Some(b) } => Some(if b == state { state + 1 } else { state }),
    }
}

/// Checks one register's history from state 0.
pub fn check_register(events: &[Event]) -> Result<(), String> {
    check_register_from(events, 0)
}

/// Checks one register's history starting from `initial` (the version the
/// file had before the history began); `Err` explains the violation.
pub fn check_register_from(events: &[Event], initial: u64) -> Result<(), String> {
    let n = events.len();
    if n > 128 {
        return Err(format!("{n} operations on one register; the checker handles at most 128"));
    }
    let required: u128 =
        events.iter().enumerate().filter(|(_, e)| e.completed.is_some()).fold(0, |m, (i, _)| m | (1u128 << i));
    let mut seen: HashSet<(u128, u64)> = HashSet::new();
    // Explicit stack of (done set, state) to avoid deep recursion.
    let mut stack = vec![(0u128, initial)];
    while let Some((done, state)) = stack.pop() {
        if done & required == required {
            return Ok(());
        }
        if !seen.insert((done, state)) {
            continue;
        }
        // The next operation to take effect must have started before every
        // not-yet-done completed operation finished.
        let horizon = events
            .iter()
            .enumerate()
            .filter(|(i, e)| done & (1 << i) == 0 && e.completed.is_some())
            .filter_map(|(_, e)| e.completed)
            .min()
            .unwrap_or(u128::MAX);
        for (i, e) in events.iter().enumerate() {
            if done & (1 << i) != 0 || e.invoked > horizon {
                continue;
            }
            if let Some(next) = step(state, e.op) {
                stack.push((done | (1 << i), next));
            }
        }
    }
    Err("no order of the operations agrees with their results and real-time order".into())
}

/// Checks a whole history, register by register, each from state 0.
pub fn check(events: &[Event]) -> Result<(), String> {
    check_from(events, 0)
}

/// Checks a whole history, every register starting from `initial`.
pub fn check_from(events: &[Event], initial: u64) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in events {
        by_key.entry(&e.key).or_default().push(e.clone());
    }
    for (key, evs) in by_key {
        check_register_from(&evs, initial).map_err(|why| format!("register {key}: {why}; history: {evs:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(invoked: u128, completed: u128, op: Op) -> Event {
        Event { key: "k".into(), invoked, completed: Some(completed), op }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            ev(0, 1, Op::Read(0)),
            ev(2, 3, Op::Write(1)),
            ev(4, 5, Op::Cas { base: 1, result: Some(2) }),
            ev(6, 7, Op::Cas { base: 1, result: None }),
            ev(8, 9, Op::Read(2)),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn stale_read_after_a_completed_write_is_caught() {
        let h = [ev(0, 1, Op::Write(1)), ev(2, 3, Op::Read(0))];
        assert!(check(&h).is_err());
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps the write, so it may see either version.
        let h = [ev(0, 10, Op::Write(1)), ev(1, 2, Op::Read(1)), ev(3, 4, Op::Read(1))];
        assert!(check(&h).is_ok());
        let h = [ev(0, 10, Op::Write(1)), ev(1, 2, Op::Read(1)), ev(3, 4, Op::Read(0))];
        assert!(check(&h).is_err(), "a read cannot go back once a later read saw the write");
    }

    #[test]
    fn two_successful_cas_on_the_same_base_are_caught() {
        let h = [ev(0, 5, Op::Cas { base: 0, result: Some(1) }), ev(0, 5, Op::Cas { base: 0, result: Some(1) })];
        assert!(check(&h).is_err());
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        let maybe = Event { key: "k".into(), invoked: 0, completed: None, op: Op::Unknown { base: None } };
        assert!(check(&[maybe.clone(), ev(5, 6, Op::Read(1))]).is_ok());
        assert!(check(&[maybe.clone(), ev(5, 6, Op::Read(0))]).is_ok());
        assert!(check(&[maybe, ev(5, 6, Op::Read(2))]).is_err());
    }
}
