"""S3 operations through boto3 (the SDK most applications use), against a real cluster.
Every test checks the bytes or the listing that comes back, not just a status code."""

import base64
import datetime
import hashlib
import os
import urllib.request

import botocore.exceptions
import pytest

MIB = 1 << 20


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def body(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_bucket_lifecycle(s3):
    s3.create_bucket(Bucket="lifecycle-bucket")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "lifecycle-bucket" in names
    s3.head_bucket(Bucket="lifecycle-bucket")
    assert s3.get_bucket_location(Bucket="lifecycle-bucket")["LocationConstraint"] in (None, "")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket="lifecycle-bucket")
    assert code_of(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="lifecycle-bucket", Key="x", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket="lifecycle-bucket")
    assert code_of(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="lifecycle-bucket", Key="x")
    s3.delete_bucket(Bucket="lifecycle-bucket")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket="lifecycle-bucket")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_objects_v2(Bucket="lifecycle-bucket")
    assert code_of(e) == "NoSuchBucket"


def test_invalid_bucket_names_are_refused(s3):
    for name in ["UPPER", "a", "under_score", "-dash-first", "x" * 64]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert code_of(e) == "InvalidBucketName", name


def test_put_get_round_trip_with_metadata(s3, bucket):
    data = os.urandom(3 * MIB + 17)
    put = s3.put_object(
        Bucket=bucket,
        Key="docs/report 2024+final%.bin",
        Body=data,
        ContentType="application/x-test",
        ContentDisposition='attachment; filename="r.bin"',
        CacheControl="max-age=60",
        ContentEncoding="identity",
        Metadata={"Owner": "alice", "purpose": "unit test"},
    )
    assert put["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="docs/report 2024+final%.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["ContentDisposition"] == 'attachment; filename="r.bin"'
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"owner": "alice", "purpose": "unit test"}
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="docs/report 2024+final%.bin")
    assert head["ContentLength"] == len(data)
    assert head["Metadata"]["owner"] == "alice"
    # Response header overrides.
    over = s3.get_object(
        Bucket=bucket, Key="docs/report 2024+final%.bin", ResponseContentType="text/plain", ResponseCacheControl="no-store"
    )
    assert (over["ContentType"], over["CacheControl"]) == ("text/plain", "no-store")


@pytest.mark.parametrize("key", ["ünïcødé/ファイル.txt", "a b/c+d/e%20f", ("y" * 250 + "/") * 3 + "z" * 250, "deep/" * 50 + "leaf"])
def test_unusual_keys(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert body(s3, bucket, key) == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert key in listed


def test_keys_the_namespace_cannot_hold_are_refused(s3, bucket):
    for key in ["a//b", "a/./b", "../b", "s" * 256]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert code_of(e) == "InvalidArgument", key
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert code_of(e) == "KeyTooLongError"


def test_empty_object_and_folder_marker(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert body(s3, bucket, "empty") == b""
    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")
    assert s3.head_object(Bucket=bucket, Key="folder/")["ContentLength"] == 0
    s3.put_object(Bucket=bucket, Key="folder/inside", Body=b"in")
    # Deleting the marker never deletes what is inside.
    s3.delete_object(Bucket=bucket, Key="folder/")
    assert body(s3, bucket, "folder/inside") == b"in"


def test_ranges(s3, bucket):
    data = os.urandom(10 * MIB + 3)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for spec, want in [
        ("bytes=0-0", data[:1]),
        ("bytes=100-199", data[100:200]),
        ("bytes=-5", data[-5:]),
        ("bytes=9000000-", data[9000000:]),
        (f"bytes=4194300-{len(data) + 100}", data[4194300:]),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=spec)
        assert got["Body"].read() == want, spec
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].endswith(f"/{len(data)}")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(e) == "InvalidRange"


def test_conditional_requests(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    assert body(s3, bucket, "c", IfMatch=etag) == b"v1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123"')
    assert code_of(e) == "PreconditionFailed"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert body(s3, bucket, "c", IfModifiedSince=past) == b"v1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert code_of(e) == "PreconditionFailed"
    # Conditional writes: create-only and compare-and-swap on the ETag.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"v2", IfNoneMatch="*")
    assert code_of(e) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="new-only", Body=b"n", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"v2", IfMatch='"ffff"')
    assert code_of(e) == "PreconditionFailed"
    s3.put_object(Bucket=bucket, Key="c", Body=b"v2", IfMatch=etag)
    assert body(s3, bucket, "c") == b"v2"


def test_missing_things(s3, bucket):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert code_of(e) == "NoSuchKey"
    assert e.value.response["Error"].get("RequestId") or e.value.response["ResponseMetadata"].get("RequestId")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="nope")
    assert code_of(e) == "NoSuchBucket"
    # Deleting what does not exist succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="nope")


def test_checksums_and_content_md5(s3, bucket):
    data = os.urandom(MIB)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=md5)
    assert body(s3, bucket, "md5") == data
    # (CRC32C and CRC64NVME need botocore's optional CRT extension.)
    for algo in ["CRC32", "SHA1", "SHA256"]:
        s3.put_object(Bucket=bucket, Key=f"sum-{algo}", Body=data, ChecksumAlgorithm=algo)
        assert body(s3, bucket, f"sum-{algo}") == data
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-md5", Body=data, ContentMD5=wrong)
    assert code_of(e) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad-md5")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    bad_sha = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-sha", Body=data, ChecksumSHA256=bad_sha)
    assert code_of(e) == "BadDigest"


def test_copy_is_server_side_and_keeps_or_replaces_metadata(s3, bucket):
    data = os.urandom(2 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="image/png", Metadata={"a": "1"})
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (data, "image/png", {"a": "1"})
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"b": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"b": "2"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(e) == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch='"00"')
    assert code_of(e) == "PreconditionFailed"


def test_delete_objects(s3, bucket):
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"d/{i}"} for i in range(0, 10, 2)]})
    assert sorted(d["Key"] for d in out["Deleted"]) == [f"d/{i}" for i in range(0, 10, 2)]
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="d/")["Contents"]]
    assert left == [f"d/{i}" for i in range(1, 10, 2)]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/1"}], "Quiet": True})
    assert not quiet.get("Deleted")


def test_listing_v1_v2_prefix_delimiter_and_pages(s3, bucket):
    keys = sorted(
        [f"photos/2024/{i:03}.jpg" for i in range(120)]
        + [f"photos/2025/{i}.jpg" for i in range(5)]
        + ["photos/readme", "docs/a", "docs/b/c", "top", "top-2"]
    )
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    paginator = s3.get_paginator("list_objects_v2")
    got = [o["Key"] for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 7}) for o in page["Contents"]]
    assert got == keys
    v1 = s3.get_paginator("list_objects")
    got = [o["Key"] for page in v1.paginate(Bucket=bucket, PaginationConfig={"PageSize": 11}) for o in page["Contents"]]
    assert got == keys
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["docs/", "photos/"]
    assert [o["Key"] for o in top["Contents"]] == ["top", "top-2"]
    years = s3.list_objects_v2(Bucket=bucket, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in years["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    assert [o["Key"] for o in years["Contents"]] == ["photos/readme"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="photos/2024/118.jpg", MaxKeys=3)
    assert [o["Key"] for o in after["Contents"]] == ["photos/2024/119.jpg", "photos/2025/0.jpg", "photos/2025/1.jpg"]
    assert after["IsTruncated"] and after["KeyCount"] == 3
    # Pages of prefixes continue after the prefix, not inside it.
    pages = list(paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}))
    assert [p.get("CommonPrefixes", [{}])[0].get("Prefix") or p["Contents"][0]["Key"] for p in pages] == [
        "docs/",
        "photos/",
        "top",
        "top-2",
    ]
    encoded = s3.list_objects_v2(Bucket=bucket, Prefix="photos/2025/", EncodingType="url")
    assert [o["Key"] for o in encoded["Contents"]][0] == "photos/2025/0.jpg"


def test_multipart_upload_with_8_mib_parts(s3, bucket):
    parts = [os.urandom(8 * MIB) for _ in range(3)] + [os.urandom(1234)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp/big.bin", ContentType="video/mp4")
    uid = up["UploadId"]
    assert uid in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    etags = []
    # Out of order, and part 2 sent twice (the second one counts).
    for n in [2, 1, 4, 3, 2]:
        r = s3.upload_part(Bucket=bucket, Key="mp/big.bin", UploadId=uid, PartNumber=n, Body=parts[n - 1])
        assert r["ETag"] == '"%s"' % hashlib.md5(parts[n - 1]).hexdigest()
    for n in range(1, 5):
        etags.append({"PartNumber": n, "ETag": '"%s"' % hashlib.md5(parts[n - 1]).hexdigest()})
    listed = s3.list_parts(Bucket=bucket, Key="mp/big.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(n, len(parts[n - 1])) for n in range(1, 5)]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp/big.bin", UploadId=uid, MultipartUpload={"Parts": [etags[1], etags[0]]}
        )
    assert code_of(e) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp/big.bin",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"%s"' % ("0" * 32)}]},
        )
    assert code_of(e) == "InvalidPart"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp/big.bin", UploadId=uid, MultipartUpload={"Parts": etags})
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert done["ETag"] == f'"{digest}-4"'
    whole = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key="mp/big.bin")
    assert got["Body"].read() == whole
    assert got["ContentType"] == "video/mp4"
    assert s3.get_object(Bucket=bucket, Key="mp/big.bin", Range="bytes=8388600-8388700")["Body"].read() == whole[8388600:8388701]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp/big.bin", UploadId=uid, PartNumber=1, Body=b"late")
    assert code_of(e) == "NoSuchUpload"


def test_multipart_small_parts_abort_and_copy(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=1, Body=b"a" * 100)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=2, Body=b"b" * 100)["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="small",
            UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
    assert code_of(e) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=up)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="small", UploadId=up)
    assert code_of(e) == "NoSuchUpload"
    # UploadPartCopy: whole source and a range.
    src = os.urandom(6 * MIB)
    s3.put_object(Bucket=bucket, Key="copy-src", Body=src)
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    c1 = s3.upload_part_copy(
        Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1, CopySource={"Bucket": bucket, "Key": "copy-src"}
    )["CopyPartResult"]["ETag"]
    c2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=up,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "copy-src"},
        CopySourceRange="bytes=1000-1999",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="assembled",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": c1}, {"PartNumber": 2, "ETag": c2}]},
    )
    assert body(s3, bucket, "assembled") == src + src[1000:2000]


def test_presigned_urls(cluster, s3, bucket):
    from conftest import client_for

    v4 = client_for(
        cluster.s3_url, cluster.env["AWS_ACCESS_KEY_ID"], cluster.env["AWS_SECRET_ACCESS_KEY"], signature_version="s3v4"
    )
    data = os.urandom(4096)
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in put_url
    req = urllib.request.Request(put_url, data=data, method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    get_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    with urllib.request.urlopen(get_url) as r:
        assert r.read() == data
    # boto3's default presigned GET (signature version 2) works too.
    v2_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    with urllib.request.urlopen(v2_url) as r:
        assert r.read() == data


def test_versioning(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="v", Body=b"before")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions] == [("v", "null", True)]
    assert body(s3, bucket, "v", VersionId="null") == b"before"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"two")["VersionId"]
    v3 = s3.put_object(Bucket=bucket, Key="v", Body=b"three")["VersionId"]
    assert body(s3, bucket, "v") == b"three"
    assert body(s3, bucket, "v", VersionId=v2) == b"two"
    assert s3.head_object(Bucket=bucket, Key="v", VersionId=v2)["ContentLength"] == 3
    listed = s3.list_object_versions(Bucket=bucket, Prefix="v")["Versions"]
    assert [v["VersionId"] for v in listed][:2] == [v3, v2]
    assert [v["IsLatest"] for v in listed][:2] == [True, False]
    # Delete without a version id: a delete marker; the data stays.
    deleted = s3.delete_object(Bucket=bucket, Key="v")
    assert deleted["DeleteMarker"] is True
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="v")
    assert code_of(e) == "NoSuchKey"
    assert body(s3, bucket, "v", VersionId=v3) == b"three"
    markers = s3.list_object_versions(Bucket=bucket, Prefix="v")["DeleteMarkers"]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in markers] == [("v", deleted["VersionId"], True)]
    # Deleting the delete marker brings the object back.
    s3.delete_object(Bucket=bucket, Key="v", VersionId=deleted["VersionId"])
    assert body(s3, bucket, "v") == b"three"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="v", VersionId="999")
    assert code_of(e) == "NoSuchVersion"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_emptying_a_versioned_bucket_removes_every_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())
    s3.put_object(Bucket=bucket, Key="gone", Body=b"g")
    s3.delete_object(Bucket=bucket, Key="gone")
    listing = s3.list_object_versions(Bucket=bucket)
    doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listing["Versions"] + listing["DeleteMarkers"]]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed})
    assert not out.get("Errors"), out.get("Errors")
    listing = s3.list_object_versions(Bucket=bucket)
    assert not listing.get("Versions") and not listing.get("DeleteMarkers")
    s3.delete_bucket(Bucket=bucket)


def test_object_versions_page_through_long_histories(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ["a", "b"]:
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{i}".encode())
    paginator = s3.get_paginator("list_object_versions")
    seen = []
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 3}):
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert len(seen) == 10 and len(set(seen)) == 10
    assert [k for k, _ in seen] == ["a"] * 5 + ["b"] * 5


def test_users_are_isolated(s3, bob, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"alice only")
    for call in [
        lambda: bob.get_object(Bucket=bucket, Key="secret"),
        lambda: bob.list_objects_v2(Bucket=bucket),
        lambda: bob.put_object(Bucket=bucket, Key="intruder", Body=b"x"),
        lambda: bob.delete_object(Bucket=bucket, Key="secret"),
        lambda: bob.copy_object(Bucket="bobs", Key="stolen", CopySource={"Bucket": bucket, "Key": "secret"}),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code_of(e) == "NoSuchBucket"
    assert bucket not in [b["Name"] for b in bob.list_buckets()["Buckets"]]
    # Bob's bucket of the same name is his own, empty one.
    bob.create_bucket(Bucket=bucket)
    assert bob.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    bob.put_object(Bucket=bucket, Key="secret", Body=b"bob's")
    assert body(s3, bucket, "secret") == b"alice only"
    assert body(bob, bucket, "secret") == b"bob's"


def test_not_implemented_answers_cleanly(s3, bucket):
    for call in [
        lambda: s3.get_bucket_policy(Bucket=bucket),
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
        lambda: s3.get_bucket_website(Bucket=bucket),
        lambda: s3.get_bucket_replication(Bucket=bucket),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code_of(e) == "NotImplemented"
    # Canned ACLs are accepted; objects stay private.
    s3.put_object(Bucket=bucket, Key="acl", Body=b"x", ACL="private")
    acl = s3.get_object_acl(Bucket=bucket, Key="acl")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
