//! What to do with one path, from three views of it: what was last synced (the
//! base), what is local now and what is remote now. A pure function, so every
//! case is unit-tested here.
//!
//! The rules, in the order they are tried:
//! * A side that still matches the base has not changed; only the other side's
//!   change is carried over.
//! * Both changed to the same thing (same content, or both folders, or both
//!   gone): only the base is updated.
//! * Both changed differently: nothing is ever lost. A local edit against a
//!   remote edit is uploaded against the stale base, so the cluster keeps it as a
//!   conflict copy and the remote version stays under the name; an edit against
//!   a delete wins (the deleted side is in version history anyway); a file
//!   against a folder keeps the remote one under the name and sets the local one
//!   aside under a conflict name.

/// One side of a path, as a decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Absent,
    Folder,
    /// A file's content hash (and for the remote side its version).
    File {
        sha256: [u8; 32],
        version: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Both sides match the base.
    InSync,
    /// Both sides changed to the same thing: record it as the new base.
    Record,
    /// Upload the local file; `base_version` 0 means "expect no file there".
    Upload {
        base_version: u64,
    },
    /// Local and remote edits clash: upload against the stale base (the cluster
    /// writes a conflict copy), then download the remote version.
    UploadConflict {
        base_version: u64,
    },
    MkdirRemote,
    DeleteRemote,
    Download,
    MkdirLocal,
    DeleteLocal,
    /// A file and a folder clash: rename the local one to a conflict name, then
    /// take the remote one.
    SetAsideLocal,
}

impl Decision {
    /// Deletions wait until everything else in the pass is done, children first,
    /// so a folder is deleted only once it is empty on both sides.
    pub fn is_delete(self) -> bool {
        matches!(self, Decision::DeleteRemote | Decision::DeleteLocal)
    }
}

fn same(a: Side, b: Side) -> bool {
    match (a, b) {
        (Side::File { sha256: x, .. }, Side::File { sha256: y, .. }) => x == y,
        (a, b) => a == b,
    }
}

fn base_version(base: Side) -> u64 {
    match base {
        Side::File { version, .. } => version,
        _ => 0,
    }
}

/// `base` is the last synced state (`Absent` if never synced); a remote file
/// matches the base only with the same version.
pub fn decide(base: Side, local: Side, remote: Side) -> Decision {
    use Decision::*;
    let local_changed = !same(base, local);
    let remote_changed = !(same(base, remote) && base_version(base) == base_version(remote));
    match (local_changed, remote_changed) {
        (false, false) => InSync,
        (true, false) => push(base, local, remote),
        (false, true) => pull(remote),
        (true, true) if same(local, remote) => Record,
        (true, true) => match (local, remote) {
            (Side::Absent, _) => pull(remote),
            (_, Side::Absent) => push(base, local, remote),
            (Side::File { .. }, Side::File { .. }) => UploadConflict { base_version: base_version(base) },
            _ => SetAsideLocal,
        },
    }
}

fn push(base: Side, local: Side, remote: Side) -> Decision {
    match local {
        Side::Absent => Decision::DeleteRemote,
        Side::Folder => Decision::MkdirRemote,
        // Against a remote that is gone, expect nothing there (a deleted file is
        // revived with its history).
        Side::File { .. } if remote == Side::Absent => Decision::Upload { base_version: 0 },
        Side::File { .. } => Decision::Upload { base_version: base_version(base) },
    }
}

fn pull(remote: Side) -> Decision {
    match remote {
        Side::Absent => Decision::DeleteLocal,
        Side::Folder => Decision::MkdirLocal,
        Side::File { .. } => Decision::Download,
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::*;
    use super::Side::*;
    use super::*;

    fn f(content: u8, version: u64) -> Side {
        File { sha256: [content; 32], version }
    }

    #[test]
    fn one_sided_changes_are_carried_over() {
        assert_eq!(decide(f(1, 3), f(1, 0), f(1, 3)), InSync);
        assert_eq!(decide(Folder, Folder, Folder), InSync);
        assert_eq!(decide(Absent, Absent, Absent), InSync);
        // local edits
        assert_eq!(decide(f(1, 3), f(2, 0), f(1, 3)), Upload { base_version: 3 });
        assert_eq!(decide(Absent, f(2, 0), Absent), Upload { base_version: 0 });
        assert_eq!(decide(f(1, 3), Absent, f(1, 3)), DeleteRemote);
        assert_eq!(decide(Absent, Folder, Absent), MkdirRemote);
        assert_eq!(decide(Folder, Absent, Folder), DeleteRemote);
        // remote edits
        assert_eq!(decide(f(1, 3), f(1, 0), f(2, 4)), Download);
        assert_eq!(decide(Absent, Absent, f(2, 1)), Download);
        assert_eq!(decide(f(1, 3), f(1, 0), Absent), DeleteLocal);
        assert_eq!(decide(Absent, Absent, Folder), MkdirLocal);
        // a remote version bump with the same bytes (a restore) is still a change
        assert_eq!(decide(f(1, 3), f(1, 0), f(1, 5)), Download);
    }

    #[test]
    fn both_sides_changed_alike_is_only_recorded() {
        assert_eq!(decide(f(1, 3), f(2, 0), f(2, 4)), Record);
        assert_eq!(decide(Absent, f(2, 0), f(2, 1)), Record);
        assert_eq!(decide(Absent, Folder, Folder), Record);
        assert_eq!(decide(f(1, 3), Absent, Absent), Record);
    }

    #[test]
    fn clashes_never_lose_either_side() {
        // edit vs edit, and create vs create: the local one becomes a conflict copy
        assert_eq!(decide(f(1, 3), f(2, 0), f(3, 4)), UploadConflict { base_version: 3 });
        assert_eq!(decide(Absent, f(2, 0), f(3, 1)), UploadConflict { base_version: 0 });
        // edit vs delete: the edit wins on either side
        assert_eq!(decide(f(1, 3), f(2, 0), Absent), Upload { base_version: 0 });
        assert_eq!(decide(f(1, 3), Absent, f(3, 4)), Download);
        // a file against a folder
        assert_eq!(decide(Absent, f(2, 0), Folder), SetAsideLocal);
        assert_eq!(decide(Absent, Folder, f(3, 1)), SetAsideLocal);
        assert_eq!(decide(Folder, Absent, f(3, 1)), Download);
    }
}
