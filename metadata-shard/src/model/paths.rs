//! Path rules and path arithmetic. Paths are absolute and normalized: "/" or "/a/b.txt";
//! no empty, "." or ".." segments, no NUL, no trailing "/", at most 4096 bytes in all
//! and 255 per segment. Also the conflict-copy name and the UTC civil date it carries.

use super::ModelError;

pub const ROOT: &str = "/";
pub const MAX_PATH_BYTES: usize = 4096;
pub const MAX_SEGMENT_BYTES: usize = 255;

pub fn validate_path(path: &str) -> Result<(), ModelError> {
    let bad = |why: &str| Err(ModelError::InvalidPath(format!("{path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("must be absolute");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than 4096 bytes");
    }
    if path == ROOT {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return bad("empty segment or trailing '/'"),
            "." | ".." => return bad("'.' and '..' are not allowed"),
            s if s.len() > MAX_SEGMENT_BYTES => return bad("segment longer than 255 bytes"),
            s if s.contains('\0') => return bad("contains NUL"),
            _ => {}
        }
    }
    Ok(())
}

/// Validates a path that names an entry other than the root.
pub fn validate_non_root(path: &str) -> Result<(), ModelError> {
    validate_path(path)?;
    if path == ROOT {
        return Err(ModelError::InvalidPath("the root cannot be used here".into()));
    }
    Ok(())
}

pub fn is_root(path: &str) -> bool {
    path == ROOT
}

/// Parent folder of a non-root path ("/a" → "/", "/a/b" → "/a").
pub fn parent(path: &str) -> Option<&str> {
    if is_root(path) {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some(ROOT),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Last segment of a path ("" for the root).
pub fn file_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

pub fn join(folder: &str, name: &str) -> String {
    if is_root(folder) {
        format!("/{name}")
    } else {
        format!("{folder}/{name}")
    }
}

/// Proper ancestors of `path` except the root, outermost first: "/a/b/c" → ["/a", "/a/b"].
pub fn ancestors(path: &str) -> Vec<&str> {
    path.match_indices('/').filter(|(i, _)| *i > 0).map(|(i, _)| &path[..i]).collect()
}

/// `path` and its ancestors, innermost first, ending with the root.
pub fn self_and_ancestors(path: &str) -> Vec<&str> {
    let mut out = vec![path];
    let mut current = path;
    while let Some(p) = parent(current) {
        out.push(p);
        current = p;
    }
    out
}

/// Prefix shared by all descendants of `folder`: "/" for the root, else "folder/".
pub fn descendant_prefix(folder: &str) -> String {
    if is_root(folder) {
        ROOT.to_string()
    } else {
        format!("{folder}/")
    }
}

pub fn is_descendant(path: &str, folder: &str) -> bool {
    path.starts_with(&descendant_prefix(folder)) && path != folder
}

/// Rewrites `path` (equal to `from` or below it) to live under `to`.
pub fn rebase(path: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &path[from.len()..])
}

/// Civil (proleptic Gregorian) UTC date of a Unix time in milliseconds.
/// Howard Hinnant's `civil_from_days`; no calendar crate needed.
pub fn civil_date(unix_ms: i64) -> (i64, u32, u32) {
    let days = unix_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "<stem> (<DEVICE>'s conflicting copy <YYYY-MM-DD>)<.ext>" next to `path`; attempt
/// n > 1 adds " <n>" inside the parentheses so repeated conflicts on one day do not
/// collide. The stem is shortened (at a char boundary) if the name would exceed 255 bytes.
pub fn conflict_copy_path(path: &str, device_id: &str, now_ms: i64, attempt: u32) -> String {
    let folder = parent(path).unwrap_or(ROOT);
    let name = file_name(path);
    // A leading dot is part of the stem (".bashrc" has no extension).
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let device: String = device_id.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect();
    let (y, m, d) = civil_date(now_ms);
    let number = if attempt > 1 { format!(" {attempt}") } else { String::new() };
    let suffix = format!(" ({device}'s conflicting copy {y:04}-{m:02}-{d:02}{number})");
    let budget = MAX_SEGMENT_BYTES.saturating_sub(suffix.len() + ext.len());
    let mut cut = stem.len().min(budget);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    join(folder, &format!("{}{suffix}{ext}", &stem[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in ["/", "/a", "/a/b.txt", "/ä/ß"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        let long_segment = format!("/{}", "x".repeat(256));
        let long_path = "/abc".repeat(1025);
        for bad in ["", "a", "/a/", "//", "/a//b", "/..", "/a/./b", "/a\0b", &long_segment, &long_path] {
            assert!(matches!(validate_path(bad), Err(ModelError::InvalidPath(_))), "{bad:?}");
        }
    }

    #[test]
    fn arithmetic() {
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/"), None);
        assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"]);
        assert_eq!(self_and_ancestors("/a/b"), vec!["/a/b", "/a", "/"]);
        assert!(is_descendant("/a/b", "/a") && !is_descendant("/ab", "/a") && !is_descendant("/a", "/a"));
        assert_eq!(rebase("/a/b/c", "/a/b", "/x"), "/x/c");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(951_782_400_000), (2000, 2, 29));
        assert_eq!(civil_date(1_709_251_199_999), (2024, 2, 29));
        assert_eq!(civil_date(1_709_251_200_000), (2024, 3, 1));
        assert_eq!(civil_date(4_102_444_800_000), (2100, 1, 1));
    }

    #[test]
    fn conflict_names() {
        let t = 1_709_251_200_000; // 2024-03-01
        assert_eq!(
            conflict_copy_path("/d/report.final.txt", "laptop", t, 1),
            "/d/report.final (laptop's conflicting copy 2024-03-01).txt"
        );
        assert_eq!(conflict_copy_path("/.bashrc", "pc", t, 2), "/.bashrc (pc's conflicting copy 2024-03-01 2)");
        let long = format!("/{}.txt", "é".repeat(127));
        let copy = conflict_copy_path(&long, "pc", t, 1);
        assert!(validate_path(&copy).is_ok() && copy.ends_with(").txt"));
    }
}
