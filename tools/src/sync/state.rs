//! The sync client's state database (redb, in `DIR/.tessera-sync/state.redb`):
//! for every path, what was last synced (kind, version, size, mtime, content and
//! chunk hashes); the change-feed cursor; the paths a pass could not finish.
//!
//! A path's record is written only after the action it describes is done (an
//! upload committed, a download renamed into place), so a crash in between makes
//! the next pass see both sides changed to the same thing, which it records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const PENDING: TableDefinition<&str, &str> = TableDefinition::new("pending");

/// What a path was when it was last in sync on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    pub folder: bool,
    /// The remote file version (0 for folders).
    pub version: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// Hex SHA-256 of the content (empty for folders).
    pub sha256: String,
    /// Hex hashes of the file's chunks, in order.
    pub chunks: Vec<String>,
    /// The mtime was too close to when it was recorded for a same-size edit in
    /// the same clock tick to show: the next scan hashes the file whatever its mtime.
    pub racy: bool,
}

/// Who and what a folder is synced with; a state database is never reused for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub remote_root: String,
    pub owner: String,
}

pub struct StateDb {
    db: Database,
}

/// One pass's writes, committed together.
#[derive(Default)]
pub struct Changes {
    pub put: BTreeMap<String, Synced>,
    pub removed: BTreeSet<String>,
}

impl StateDb {
    pub fn open(dir: &Path, binding: &Binding) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                anyhow::anyhow!("another `tessera sync` is running on this folder ({})", path.display())
            }
            other => anyhow::anyhow!("cannot open the sync state {}: {other}", path.display()),
        })?;
        let state = Self { db };
        let tx = state.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let root = meta.get("remote_root")?.map(|v| v.value().to_owned());
            let owner = meta.get("owner")?.map(|v| v.value().to_owned());
            match (root, owner) {
                (Some(r), Some(o)) if r != binding.remote_root || o != binding.owner => {
                    let whose = if o.is_empty() { "your files".to_owned() } else { format!("{o}'s files") };
                    bail!("this folder is synced with {r} of {whose}; use another folder for another remote path");
                }
                (Some(_), Some(_)) => {}
                _ => {
                    meta.insert("remote_root", binding.remote_root.as_str())?;
                    meta.insert("owner", binding.owner.as_str())?;
                }
            }
            tx.open_table(ENTRIES)?;
            tx.open_table(PENDING)?;
        }
        tx.commit()?;
        Ok(state)
    }

    /// The change-feed cursor (None: never synced; the first pass lists everything).
    pub fn cursor(&self) -> anyhow::Result<Option<u64>> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let v = meta.get("cursor")?.map(|v| v.value().parse::<u64>()).transpose();
        v.context("corrupt cursor in the sync state")
    }

    pub fn entries(&self) -> anyhow::Result<BTreeMap<String, Synced>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ENTRIES)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let synced: Synced =
                serde_json::from_slice(v.value()).with_context(|| format!("corrupt sync state for {}", k.value()))?;
            out.insert(k.value().to_owned(), synced);
        }
        Ok(out)
    }

    pub fn pending(&self) -> anyhow::Result<BTreeSet<String>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PENDING)?;
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            out.insert(row?.0.value().to_owned());
        }
        Ok(out)
    }

    /// Records paths as they are done (one durable transaction each: a pass killed
    /// midway keeps what it finished).
    pub fn record(&self, changes: Changes) -> anyhow::Result<()> {
        if changes.put.is_empty() && changes.removed.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(ENTRIES)?;
            for path in &changes.removed {
                table.remove(path.as_str())?;
            }
            for (path, synced) in &changes.put {
                table.insert(path.as_str(), serde_json::to_vec(synced)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// When a pass last compared the whole remote tree (ms since the epoch).
    pub fn listed_at_ms(&self) -> anyhow::Result<i64> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let v = meta.get("listed_at_ms")?.map(|v| v.value().parse::<i64>()).transpose();
        Ok(v.context("corrupt listing time in the sync state")?.unwrap_or(0))
    }

    /// Ends a pass: the cursor it read up to, the paths to try again next time,
    /// and (`listed_at_ms`) when it compared the whole remote tree, if it did.
    pub fn finish_pass(
        &self,
        cursor: u64,
        pending: &BTreeSet<String>,
        listed_at_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let cursor = cursor.to_string();
            meta.insert("cursor", cursor.as_str())?;
            if let Some(at) = listed_at_ms {
                meta.insert("listed_at_ms", at.to_string().as_str())?;
            }
            let mut table = tx.open_table(PENDING)?;
            table.retain(|_, _| false)?;
            for p in pending {
                table.insert(p.as_str(), "")?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: u64) -> Synced {
        Synced {
            folder: false,
            version,
            size: 3,
            mtime_ns: 7,
            sha256: "ab".into(),
            chunks: vec!["cd".into()],
            racy: false,
        }
    }

    #[test]
    fn records_survive_reopening_and_a_folder_keeps_its_binding() {
        let dir = tempfile::tempdir().unwrap();
        let binding = Binding { remote_root: "/".into(), owner: String::new() };
        {
            let db = StateDb::open(dir.path(), &binding).unwrap();
            assert_eq!(db.cursor().unwrap(), None);
            let mut c = Changes::default();
            c.put.insert("a/b.txt".into(), file(2));
            c.put.insert("gone".into(), file(1));
            db.record(c).unwrap();
            let mut c = Changes::default();
            c.removed.insert("gone".into());
            db.record(c).unwrap();
            db.finish_pass(42, &BTreeSet::from(["x".to_owned()]), Some(5)).unwrap();
        }
        let db = StateDb::open(dir.path(), &binding).unwrap();
        assert_eq!(db.cursor().unwrap(), Some(42));
        assert_eq!(db.entries().unwrap(), BTreeMap::from([("a/b.txt".to_owned(), file(2))]));
        assert_eq!(db.pending().unwrap(), BTreeSet::from(["x".to_owned()]));
        db.finish_pass(43, &BTreeSet::new(), None).unwrap();
        assert_eq!(db.listed_at_ms().unwrap(), 5);
        assert!(db.pending().unwrap().is_empty());
        drop(db);
        let other = Binding { remote_root: "/elsewhere".into(), owner: String::new() };
        let err = StateDb::open(dir.path(), &other).err().unwrap().to_string();
        assert!(err.contains("synced with /"), "{err}");
    }

    #[test]
    fn a_second_client_on_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let binding = Binding { remote_root: "/".into(), owner: String::new() };
        let _first = StateDb::open(dir.path(), &binding).unwrap();
        let err = StateDb::open(dir.path(), &binding).err().unwrap().to_string();
        assert!(err.contains("another `tessera sync`"), "{err}");
    }
}
