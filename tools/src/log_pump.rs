//! Size-rotated process logs for `tessera cluster up`.
//!
//! The processes `cluster up` starts outlive it, so their output cannot be
//! rotated by `cluster up` itself: each process writes its stdout and stderr
//! into a pipe, and a small `tessera cluster log-pump` process (started with
//! it, in a process group of its own) copies the pipe into `NAME.log`, line by
//! line, rotating it once it passes the size limit: `NAME.log.1` is the newest
//! rotated file, and files past `NAME.log.KEEP` are deleted. The pump ends
//! when the pipe does, i.e. when the process has exited and its last lines are
//! written. Rotation is the `file-rotate` crate's.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};

/// Longest piece written at once: a longer line is split, so no file passes
/// the size limit by more than this.
pub const MAX_LINE: u64 = 64 << 10;

/// The rotation `cluster up` applies to every process log.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct LogRotation {
    /// Rotate a process's log (DIR/logs/NAME.log) once it passes this size (e.g. 10MiB).
    #[arg(long = "log-max-size", value_name = "SIZE", default_value = "10MiB", value_parser = parse_limit)]
    pub max_bytes: u64,
    /// Rotated logs kept per process (NAME.log.1, the newest, to NAME.log.N); older ones are deleted.
    #[arg(long = "log-keep", value_name = "N", default_value_t = 4)]
    pub keep: usize,
}

impl LogRotation {
    /// The most one process's logs take: every file at most the limit plus one line.
    #[cfg(test)]
    pub fn bound(&self) -> u64 {
        (self.keep as u64 + 1) * (self.max_bytes + MAX_LINE)
    }
}

fn parse_limit(s: &str) -> anyhow::Result<u64> {
    match crate::bench::parse_size(s)? {
        0 => anyhow::bail!("the log size limit must be above 0"),
        n => Ok(n),
    }
}

/// `tessera cluster log-pump` (started by `cluster up`, not by hand).
#[derive(clap::Args, Debug)]
pub struct LogPumpArgs {
    /// The log to append to (rotated files get .1, .2, ... appended).
    #[arg(long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub rotation: LogRotation,
}

/// Copies `input` into `path` until it ends, rotating by size. A write that
/// fails (a full disk) loses that line only: the pump keeps reading, so the
/// process writing into the pipe never blocks on it.
pub fn pump(input: impl Read, path: &Path, rotation: LogRotation) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // FileRotate drops writes when it cannot open the file: find that out first.
    std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut log = FileRotate::new(
        path,
        AppendCount::new(rotation.keep),
        // Rotated before the write that follows the one passing the limit:
        // whole lines stay in one file.
        ContentLimit::BytesSurpassed(usize::try_from(rotation.max_bytes).unwrap_or(usize::MAX)),
        Compression::None,
        None,
    );
    let mut input = BufReader::with_capacity(MAX_LINE as usize, input);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if (&mut input).take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let _ = log.write_all(&line);
    }
    log.flush()
}

/// The pump process: stdin to `args.file`.
pub fn run(args: &LogPumpArgs) -> anyhow::Result<()> {
    pump(std::io::stdin().lock(), &args.file, args.rotation)
        .map_err(|e| anyhow::anyhow!("log pump for {}: {e}", args.file.display()))
}

/// The last `n` lines of a process log, reaching into the newest rotated file
/// when the current one was just rotated.
pub fn tail(path: &Path, n: usize) -> String {
    let rotated = PathBuf::from(format!("{}.1", path.display()));
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.lines().count() < n {
        text = std::fs::read_to_string(rotated).unwrap_or_default() + &text;
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_log_past_the_limit_is_rotated_and_the_total_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("block-0.log");
        let rotation = LogRotation { max_bytes: 10_000, keep: 3 };
        // 1 MB of numbered lines: a hundred times the limit.
        let input: String = (0..13_000).map(|i| format!("line {i:06} {}\n", "x".repeat(66))).collect();
        assert!(input.len() > 100 * 10_000);
        pump(input.as_bytes(), &path, rotation).unwrap();

        let files = sizes(&dir.path().join("logs"));
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["block-0.log", "block-0.log.1", "block-0.log.2", "block-0.log.3"], "{files:?}");
        let total: u64 = files.iter().map(|(_, s)| s).sum();
        assert!(total <= rotation.bound(), "{total} bytes in {files:?}");
        for (name, size) in &files {
            // Each file is at most the limit plus the line that passed it.
            assert!(*size <= 10_000 + 79, "{name}: {size} bytes");
        }
        // Whole lines in every file, the newest at the end of the current log,
        // and the rotated files in order (.1 newest).
        let read = |name: &str| std::fs::read_to_string(dir.path().join("logs").join(name)).unwrap();
        for name in &names {
            assert!(read(name).lines().all(|l| l.len() == 78 && l.starts_with("line ")), "{name}");
        }
        assert!(read("block-0.log").ends_with(&format!("line 012999 {}\n", "x".repeat(66))));
        let first = |name: &str| read(name).lines().next().unwrap()[5..11].parse::<u32>().unwrap();
        assert!(first("block-0.log.3") < first("block-0.log.2"));
        assert!(first("block-0.log.2") < first("block-0.log.1"));
        assert!(first("block-0.log.1") < first("block-0.log"));
        // The tail reads the current log.
        assert!(tail(&path, 2).ends_with(&format!("line 012999 {}", "x".repeat(66))));
    }

    #[test]
    fn a_restarted_pump_appends_and_counts_what_is_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta-1.log");
        let rotation = LogRotation { max_bytes: 1000, keep: 2 };
        pump(&b"first run\n"[..], &path, rotation).unwrap();
        pump(&b"second run\n"[..], &path, rotation).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first run\nsecond run\n");
        // Past the limit across runs: the next run rotates.
        pump(&[b'a'; 1500][..], &path, rotation).unwrap();
        pump(&b"third run\n"[..], &path, rotation).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third run\n");
        assert_eq!(std::fs::metadata(dir.path().join("meta-1.log.1")).unwrap().len(), 21 + 1500);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router-0.log");
        let rotation = LogRotation { max_bytes: 1, keep: 1 };
        let long = vec![b'y'; (MAX_LINE * 2 + 10) as usize];
        pump(&long[..], &path, rotation).unwrap();
        // Three pieces, one file each; only the newest two are kept.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
        assert_eq!(std::fs::metadata(dir.path().join("router-0.log.1")).unwrap().len(), MAX_LINE);
        assert!(!dir.path().join("router-0.log.2").exists());
    }

    #[test]
    fn the_tail_reaches_into_the_newest_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta-2.log");
        std::fs::write(dir.path().join("meta-2.log.1"), "a\nb\nc\n").unwrap();
        std::fs::write(&path, "d\n").unwrap();
        assert_eq!(tail(&path, 3), "b\nc\nd");
        assert_eq!(tail(&path, 1), "d");
    }
}
