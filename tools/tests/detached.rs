//! Deleted files displaced from their path (`tessera detached`, `versions
//! --detached`, `reattach`) against `tessera dev`.

mod common;

use common::{ok_json, start_dev, tessera};

#[test]
fn a_deleted_file_displaced_by_a_new_one_keeps_its_history_and_can_be_put_back() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = &dev.env;
    let (old, new) = (work.path().join("old.txt"), work.path().join("new.txt"));
    std::fs::write(&old, b"the old report").unwrap();
    std::fs::write(&new, b"another file").unwrap();
    let put = |local: &std::path::Path, remote: &str| ok_json(env, &["put", local.to_str().unwrap(), remote]);
    put(&old, "/report.txt");
    put(&new, "/draft.txt");
    ok_json(env, &["rm", "/report.txt"]);
    assert_eq!(ok_json(env, &["detached"]), serde_json::json!([]), "a plain delete stays at its path");
    ok_json(env, &["mv", "/draft.txt", "/report.txt"]); // displaces the deleted report

    let detached = ok_json(env, &["detached"]);
    let files = detached.as_array().unwrap();
    assert_eq!(files.len(), 1, "{detached}");
    assert_eq!(files[0]["path"], "/report.txt");
    let id = files[0]["id"].as_u64().unwrap().to_string();
    let versions = ok_json(env, &["versions", "--detached", &id]);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"the old report"));
    assert_eq!(versions[0]["sha256"], sha.as_str());

    // Back under a free name, with its bytes; the path's new file is untouched.
    let taken = tessera(env, &["reattach", &id, "/report.txt"]);
    assert!(!taken.status.success(), "a live path is refused");
    ok_json(env, &["reattach", &id, "/report (old).txt"]);
    let back = work.path().join("back.txt");
    ok_json(env, &["get", "/report (old).txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"the old report");
    ok_json(env, &["get", "/report.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"another file");
    assert_eq!(ok_json(env, &["detached"]), serde_json::json!([]));
    let again = tessera(env, &["reattach", &id, "/elsewhere.txt"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));
}
