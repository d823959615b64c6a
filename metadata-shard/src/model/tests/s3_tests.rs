//! Buckets (create, versioning settings) and multipart uploads (parts, replacement,
//! completion, abort) with their chunk references; object metadata on versions.

use super::*;

const UPLOAD: UploadId = [7; 16];

fn create_upload(kv: &mut MemKv, id: UploadId, path: &str) -> MultipartUpload {
    let meta = ObjectMeta { content_type: Some("text/plain".into()), ..ObjectMeta::default() };
    let cmd =
        ShardCommand::CreateMultipart { upload_id: id, user_id: ALICE.into(), path: path.into(), meta, now_ms: T0 };
    match run(kv, cmd) {
        ShardResponse::MultipartCreated(u) => u,
        other => panic!("unexpected {other:?}"),
    }
}

fn part(number: u32, chunks: &[ChunkRef]) -> PartRecord {
    PartRecord {
        part_number: number,
        size: chunks.iter().map(|c| c.size).sum(),
        md5: [number as u8; 16],
        sha256: hash(5_000 + u64::from(number) + chunks.iter().map(|c| c.size).sum::<u64>()),
        chunks: chunks.to_vec(),
        uploaded_at_ms: T0,
    }
}

fn put_part(kv: &mut MemKv, id: UploadId, part: PartRecord) -> Result<ShardResponse, ModelError> {
    try_run(kv, ShardCommand::PutPart { upload_id: id, user_id: ALICE.into(), part })
}

fn complete(kv: &mut MemKv, id: UploadId, chosen: &[&PartRecord]) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::CompleteMultipart(CompleteMultipart {
            upload_id: id,
            user_id: ALICE.into(),
            parts: chosen.iter().map(|p| ChosenPart { part_number: p.part_number, sha256: p.sha256 }).collect(),
            etag: "abc-2".into(),
            content_sha256: hash(9_999),
            created_by: ALICE.into(),
            device_id: "s3".into(),
            policy: ConflictPolicy::LastWriterWins,
            now_ms: T0 + 5,
        }),
    )
}

#[test]
fn buckets_are_created_once_and_keep_their_versioning_state() {
    let mut kv = MemKv::default();
    let create = |path: &str| ShardCommand::CreateBucket {
        user_id: ALICE.into(),
        path: path.into(),
        device_id: "s3".into(),
        now_ms: T0,
    };
    let set = |v| ShardCommand::SetBucketVersioning {
        user_id: ALICE.into(),
        path: "/photos".into(),
        versioning: v,
        device_id: "s3".into(),
        now_ms: T0,
    };
    assert!(matches!(run(&mut kv, create("/photos")), ShardResponse::BucketCreated(e) if e.is_folder()));
    assert!(matches!(try_run(&mut kv, create("/photos")), Err(ModelError::AlreadyExists(_))));
    assert!(matches!(try_run(&mut kv, create("/a/b")), Err(ModelError::InvalidArgument(_))));
    assert_eq!(buckets::bucket_config(&kv, ALICE, "/photos").unwrap().versioning, BucketVersioning::Unversioned);
    let before = all_changes(&kv, ALICE, 0).len();
    run(&mut kv, set(BucketVersioning::Enabled));
    assert_eq!(buckets::bucket_config(&kv, ALICE, "/photos").unwrap().versioning, BucketVersioning::Enabled);
    // Logged, so routers drop cached settings.
    let changes = all_changes(&kv, ALICE, 0);
    assert_eq!(changes.len(), before + 1);
    assert_eq!((changes[before].kind, changes[before].path.as_str()), (ChangeKind::Modify, "/photos"));
    assert!(matches!(try_run(&mut kv, set(BucketVersioning::Unversioned)), Err(ModelError::InvalidArgument(_))));
    run(&mut kv, set(BucketVersioning::Suspended));
    // Another user's bucket of the same name is another bucket.
    assert_eq!(buckets::bucket_config(&kv, BOB, "/photos").unwrap().versioning, BucketVersioning::Unversioned);
    // Deleting and re-creating the bucket resets its settings.
    delete(&mut kv, "/photos");
    assert!(matches!(try_run(&mut kv, set(BucketVersioning::Enabled)), Err(ModelError::NotFound(_))));
    run(&mut kv, create("/photos"));
    assert_eq!(buckets::bucket_config(&kv, ALICE, "/photos").unwrap().versioning, BucketVersioning::Unversioned);
}

#[test]
fn multipart_parts_hold_references_until_completion_hands_them_over() {
    let mut kv = MemKv::default();
    let upload = create_upload(&mut kv, UPLOAD, "/b/big.bin");
    assert_eq!(upload.path, "/b/big.bin");
    let p1 = part(1, &[chunk(1), chunk(2)]);
    let p2_old = part(2, &[chunk(3)]);
    let p2 = part(2, &[chunk(4), chunk(1)]);
    let p3_unused = part(3, &[chunk(5)]);
    put_part(&mut kv, UPLOAD, p2_old.clone()).unwrap();
    put_part(&mut kv, UPLOAD, p1.clone()).unwrap();
    put_part(&mut kv, UPLOAD, p3_unused.clone()).unwrap();
    assert_eq!((refcount(&kv, 1), refcount(&kv, 3), refcount(&kv, 5)), (1, 1, 1));
    // Sending part 2 again replaces it and releases the old part's chunk.
    put_part(&mut kv, UPLOAD, p2.clone()).unwrap();
    assert_eq!((refcount(&kv, 1), refcount(&kv, 3), refcount(&kv, 4)), (2, 0, 1));
    let page = multipart::list_parts(&kv, &UPLOAD, ALICE, 0, 2).unwrap();
    assert_eq!(page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(page.next_after, Some(2));
    let rest = multipart::list_parts(&kv, &UPLOAD, ALICE, 2, 2).unwrap();
    assert_eq!((rest.parts.len(), rest.next_after), (1, None));
    // Completing against the replaced part's checksum fails and changes nothing.
    assert!(matches!(complete(&mut kv, UPLOAD, &[&p1, &p2_old]), Err(ModelError::NotFound(_))));
    assert!(matches!(complete(&mut kv, UPLOAD, &[&p2, &p1]), Err(ModelError::InvalidArgument(_))));
    let ShardResponse::Committed(outcome) = complete(&mut kv, UPLOAD, &[&p1, &p2]).unwrap() else { panic!() };
    assert_eq!((outcome.path.as_str(), outcome.version), ("/b/big.bin", 1));
    let v = versions::get_version(&kv, ALICE, &FileRef::Path("/b/big.bin".into()), 1).unwrap();
    assert_eq!(v.chunks, [chunk(1), chunk(2), chunk(4), chunk(1)]);
    assert_eq!(v.size, p1.size + p2.size);
    assert_eq!((v.meta.etag.as_str(), v.meta.part_sizes.clone()), ("abc-2", vec![p1.size, p2.size]));
    assert_eq!(v.meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(stat(&kv, "/b/big.bin").unwrap().file().unwrap().etag, "abc-2");
    // The version holds exactly its chunks; the unused part's chunk was released.
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2), refcount(&kv, 4), refcount(&kv, 5)), (2, 1, 1, 0));
    assert!(matches!(multipart::get_upload(&kv, &UPLOAD, ALICE), Err(ModelError::NotFound(_))));
    assert!(multipart::list_uploads(&kv, ALICE, "/", None, 10).unwrap().uploads.is_empty());
}

#[test]
fn aborted_uploads_release_everything_and_uploads_are_private() {
    let mut kv = MemKv::default();
    create_upload(&mut kv, UPLOAD, "/b/x");
    create_upload(&mut kv, [8; 16], "/b/y");
    create_upload(&mut kv, [9; 16], "/c/z");
    put_part(&mut kv, UPLOAD, part(1, &[chunk(1)])).unwrap();
    put_part(&mut kv, UPLOAD, part(2, &[chunk(2)])).unwrap();
    assert!(matches!(put_part(&mut kv, UPLOAD, part(10_001, &[chunk(2)])), Err(ModelError::InvalidArgument(_))));
    // Bob can neither see nor touch Alice's upload.
    assert!(multipart::get_upload(&kv, &UPLOAD, BOB).is_err());
    let bob_part = ShardCommand::PutPart { upload_id: UPLOAD, user_id: BOB.into(), part: part(3, &[chunk(3)]) };
    assert!(matches!(try_run(&mut kv, bob_part), Err(ModelError::NotFound(_))));
    let listed = multipart::list_uploads(&kv, ALICE, "/b/", None, 1).unwrap();
    assert_eq!(listed.uploads[0].path, "/b/x");
    let after = listed.next_after.clone().unwrap();
    let next = multipart::list_uploads(&kv, ALICE, "/b/", Some((after.0.as_str(), &after.1)), 5).unwrap();
    assert_eq!((next.uploads.len(), next.uploads[0].path.as_str(), next.next_after), (1, "/b/y", None));
    run(&mut kv, ShardCommand::AbortMultipart { upload_id: UPLOAD, user_id: ALICE.into() });
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (0, 0));
    assert_eq!(zero_log(&kv), [hash(1), hash(2)]);
    assert!(multipart::list_parts(&kv, &UPLOAD, ALICE, 0, 10).is_err());
    assert_eq!(multipart::list_uploads(&kv, ALICE, "/", None, 10).unwrap().uploads.len(), 2);
}

#[test]
fn metadata_is_part_of_a_version() {
    let mut kv = MemKv::default();
    let with_type = |t: &str| {
        let mut cmd = commit_cmd("/f.txt", &[chunk(1)], 1, None, "dev1");
        cmd.meta = ObjectMeta { etag: "e1".into(), content_type: Some(t.into()), ..ObjectMeta::default() };
        ShardCommand::CommitVersion(cmd)
    };
    run(&mut kv, with_type("text/plain"));
    // Same bytes, same metadata: no new version. Same bytes, new metadata: a new version.
    let ShardResponse::Committed(same) = run(&mut kv, with_type("text/plain")) else { panic!() };
    assert_eq!((same.version, same.new_version), (1, false));
    let ShardResponse::Committed(changed) = run(&mut kv, with_type("text/html")) else { panic!() };
    assert_eq!((changed.version, changed.new_version), (2, true));
    let v1 = versions::get_version(&kv, ALICE, &FileRef::Path("/f.txt".into()), 1).unwrap();
    assert_eq!(v1.meta.content_type.as_deref(), Some("text/plain"));
    // A restore brings the old version's metadata back with its content.
    run(
        &mut kv,
        ShardCommand::RestoreVersion {
            user_id: ALICE.into(),
            path: "/f.txt".into(),
            version: 1,
            created_by: ALICE.into(),
            device_id: "dev1".into(),
            now_ms: T0,
        },
    );
    let v3 = versions::get_version(&kv, ALICE, &FileRef::Path("/f.txt".into()), 3).unwrap();
    assert_eq!(v3.meta, v1.meta);
    let listed = versions::list_versions(&kv, ALICE, &FileRef::Path("/f.txt".into()), None, 10).unwrap();
    assert_eq!(listed.versions.iter().map(|v| v.etag.as_str()).collect::<Vec<_>>(), ["e1", "e1", "e1"]);
}

#[test]
fn single_versions_can_be_deleted_oldest_first_or_the_last_one() {
    let mut kv = MemKv::default();
    for content in 1..=4 {
        commit(&mut kv, "/v.bin", &[chunk(content)], content);
    }
    let drop = |v: u64| ShardCommand::DeleteVersion {
        user_id: ALICE.into(),
        path: "/v.bin".into(),
        version: v,
        device_id: "s3".into(),
        now_ms: T0 + 9,
    };
    let history = |kv: &MemKv| {
        let page = versions::list_versions(kv, ALICE, &FileRef::Path("/v.bin".into()), None, 10).unwrap();
        page.versions.iter().map(|v| v.version).collect::<Vec<_>>()
    };
    // A middle version leaves a hole; its chunk is released.
    assert!(matches!(run(&mut kv, drop(2)), ShardResponse::VersionDeleted { file_removed: false }));
    assert_eq!((history(&kv), refcount(&kv, 2)), (vec![4, 3, 1], 0));
    assert!(matches!(try_run(&mut kv, drop(2)), Err(ModelError::NotFound(_))));
    // The current version stays while older ones exist.
    assert!(matches!(try_run(&mut kv, drop(4)), Err(ModelError::InvalidArgument(_))));
    // Dropping the oldest moves the bound past the hole.
    run(&mut kv, drop(1));
    assert_eq!(stat(&kv, "/v.bin").unwrap().file().unwrap().oldest_version, 3);
    run(&mut kv, drop(3));
    assert_eq!((history(&kv), stat(&kv, "/v.bin").unwrap().file().unwrap().version), (vec![4], 4));
    // The last version takes the file with it; the next commit starts a new file.
    assert!(matches!(run(&mut kv, drop(4)), ShardResponse::VersionDeleted { file_removed: true }));
    assert!(matches!(stat(&kv, "/v.bin"), Err(ModelError::NotFound(_))));
    assert!(namespace::stat(&kv, ALICE, "/v.bin", true).is_err(), "no tombstone is left");
    assert_eq!((1..=4).map(|n| refcount(&kv, n)).sum::<u64>(), 0);
    assert_eq!(commit(&mut kv, "/v.bin", &[chunk(9)], 9).version, 1);
}
