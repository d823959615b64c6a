//! Which metadata shard group owns a user: an explicit assignment recorded in
//! the cluster group when there is one (a user that was moved, or pinned while
//! the ring changes), else the consistent-hash ring of user ids.
//!
//! The ring comes from the `hashring` crate, which has no notion of weight, so
//! each group is added at `vnodes` points; a point's position is the ring's
//! hash of its name `shard-{group_id}-{i}`, so positions depend only on the
//! group list and a group that joins or leaves moves only the users that land
//! on its points. Routers and the cluster group's own safety checks use this
//! one implementation, so they always agree on where a user lives.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashring::HashRing;

/// One point of a group on the ring. Kept as numbers; the name is only built
/// while hashing, which the ring does once per point when it is added.
#[derive(Debug, Clone, Copy)]
struct RingPoint {
    group_id: u64,
    vnode: u32,
}

impl Hash for RingPoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        format!("shard-{}-{}", self.group_id, self.vnode).hash(state);
    }
}

/// Where users live: ring plus explicit assignments, for one state of the
/// cluster group's shard map.
#[derive(Debug, Clone)]
pub struct UserPlacement {
    ring: HashRing<RingPoint>,
    /// Group ids of the map, sorted, unique.
    groups: Vec<u64>,
    assignments: Arc<BTreeMap<String, u64>>,
}

impl UserPlacement {
    /// `groups`: (group id, vnodes) of every group in the map, any order; a
    /// repeated id keeps the entry with the most vnodes.
    pub fn new(groups: &[(u64, u32)], assignments: BTreeMap<String, u64>) -> Self {
        let mut groups = groups.to_vec();
        // A fixed order keeps (astronomically rare) position collisions deterministic.
        groups.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        groups.dedup_by_key(|g| g.0);
        let points = groups
            .iter()
            .flat_map(|&(group_id, vnodes)| (0..vnodes).map(move |vnode| RingPoint { group_id, vnode }))
            .collect();
        let mut ring = HashRing::new();
        ring.batch_add(points);
        Self { ring, groups: groups.iter().map(|g| g.0).collect(), assignments: Arc::new(assignments) }
    }

    /// The group owning `user_id`: its explicit assignment if any, else the ring's choice.
    pub fn group_for_user(&self, user_id: &str) -> Option<u64> {
        self.assignments.get(user_id).copied().or_else(|| self.ring_group_for(user_id))
    }

    /// The ring's choice for `key`, ignoring assignments.
    pub fn ring_group_for(&self, key: &str) -> Option<u64> {
        self.ring.get(&key).map(|point| point.group_id)
    }

    /// The group keeping storage tiering's chunk location records: the lowest
    /// group id of the map. Records do not follow users, so they must not move
    /// when groups are added; the cluster group refuses to remove this group
    /// while others remain.
    pub fn chunk_record_group(&self) -> Option<u64> {
        self.groups.first().copied()
    }

    pub fn groups(&self) -> &[u64] {
        &self.groups
    }

    pub fn assignments(&self) -> &BTreeMap<String, u64> {
        &self.assignments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_wins_over_the_ring() {
        let ring_only = UserPlacement::new(&[(1, 64), (2, 64)], BTreeMap::new());
        let on_ring = ring_only.group_for_user("alice").expect("two groups");
        let other = if on_ring == 1 { 2 } else { 1 };
        let assigned = UserPlacement::new(&[(1, 64), (2, 64)], BTreeMap::from([("alice".to_owned(), other)]));
        assert_eq!(assigned.group_for_user("alice"), Some(other));
        assert_eq!(assigned.ring_group_for("alice"), Some(on_ring));
    }

    #[test]
    fn chunk_records_stay_on_the_lowest_group_when_groups_are_added() {
        let one = UserPlacement::new(&[(1, 64)], BTreeMap::new());
        let three = UserPlacement::new(&[(3, 64), (1, 64), (2, 64)], BTreeMap::new());
        assert_eq!(one.chunk_record_group(), Some(1));
        assert_eq!(three.chunk_record_group(), Some(1));
        assert_eq!(UserPlacement::new(&[], BTreeMap::new()).chunk_record_group(), None);
    }
}
