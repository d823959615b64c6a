//! The local side of a synced folder: scanning it, what the client ignores
//! (its state folder and its own temp files), and writing files atomically
//! (temp file in the same folder, fsync, rename, fsync of the folder).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The client's own folder inside a synced folder (state database).
pub const STATE_DIR: &str = ".tessera-sync";
/// Prefix of the client's temp files (partial downloads), never synced.
pub const TEMP_PREFIX: &str = ".~tessera-";

pub fn ignored(name: &str) -> bool {
    name == STATE_DIR || name.starts_with(TEMP_PREFIX)
}

/// A local file or folder as the file system shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalItem {
    Folder,
    File { size: u64, mtime_ns: i64 },
}

pub fn mtime_ns(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn item(meta: &std::fs::Metadata) -> Option<LocalItem> {
    if meta.is_dir() {
        Some(LocalItem::Folder)
    } else if meta.is_file() {
        Some(LocalItem::File { size: meta.len(), mtime_ns: meta.modified().map(mtime_ns).unwrap_or(0) })
    } else {
        None // symlinks, sockets, devices: not synced
    }
}

/// The local path of `rel` ("a/b.txt") under `root`.
pub fn local_path(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(root.to_path_buf(), |p, seg| p.join(seg))
}

/// What is at `rel` now (None: nothing, or something that is not synced).
pub fn stat(root: &Path, rel: &str) -> io::Result<Option<LocalItem>> {
    match std::fs::symlink_metadata(local_path(root, rel)) {
        Ok(m) => Ok(item(&m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every synced file and folder under `root`, by relative path with `/`
/// separators. Names that are not UTF-8, symlinks and special files are left
/// out (and said so once per scan in the log).
pub fn scan(root: &Path) -> io::Result<BTreeMap<String, LocalItem>> {
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name().to_str().is_none_or(|n| !ignored(n)));
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            // A file deleted while the scan ran is simply gone.
            Err(e) if e.io_error().is_some_and(|io| io.kind() == io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let Some(rel) = rel.to_str() else {
            tracing::warn!(path = %entry.path().display(), "not synced: the name is not UTF-8");
            continue;
        };
        let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.io_error().is_some_and(|io| io.kind() == io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        match item(&meta) {
            Some(i) => {
                out.insert(rel, i);
            }
            None => tracing::debug!(path = %entry.path().display(), "not synced: not a file or folder"),
        }
    }
    Ok(out)
}

/// A temp file beside `target`, named so a later pass can find and resume it.
pub fn temp_beside(target: &Path, tag: &str) -> PathBuf {
    let dir = target.parent().unwrap_or(Path::new("."));
    dir.join(format!("{TEMP_PREFIX}{tag}.part"))
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Renames `from` over `to` and makes the rename durable.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    fsync_dir(to.parent().unwrap_or(Path::new(".")))
}

/// The conflict-copy name the cluster uses: "name (DEVICE's conflicting copy YYYY-MM-DD).ext".
pub fn conflict_name(rel: &str, device: &str, now_ms: i64, attempt: u32) -> String {
    let full = tessera_meta::model::paths::conflict_copy_path(&format!("/{rel}"), device, now_ms, attempt);
    full.trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_files_and_folders_and_skips_the_clients_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b c")).unwrap();
        std::fs::write(root.join("a/b c/ünï cødé.txt"), b"xyz").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::create_dir_all(root.join(STATE_DIR)).unwrap();
        std::fs::write(root.join(STATE_DIR).join("state.redb"), b"db").unwrap();
        std::fs::write(root.join("a").join(format!("{TEMP_PREFIX}x.part")), b"part").unwrap();
        std::os::unix::fs::symlink(root.join("empty"), root.join("link")).unwrap();
        let found = scan(root).unwrap();
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "a/b c", "a/b c/ünï cødé.txt", "empty"]);
        assert!(matches!(found["a/b c/ünï cødé.txt"], LocalItem::File { size: 3, .. }));
        assert_eq!(found["a"], LocalItem::Folder);
        assert_eq!(stat(root, "a/b c/ünï cødé.txt").unwrap(), Some(found["a/b c/ünï cødé.txt"]));
        assert_eq!(stat(root, "nope/x").unwrap(), None);
        assert_eq!(stat(root, "empty/x").unwrap(), None);
    }

    #[test]
    fn conflict_names_follow_the_clusters_format() {
        // 2026-12-01T00:00:00Z
        let name = conflict_name("docs/report.txt", "laptop", 1_796_083_200_000, 1);
        assert_eq!(name, "docs/report (laptop's conflicting copy 2026-12-01).txt");
    }
}
