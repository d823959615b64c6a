"""The S3 wire protocol at the edges: signature failures, clock skew, presigned URL
expiry and tampering, malformed XML, bodies that end early, virtual-hosted addressing,
and the XML error body with its request id. Requests are signed by `sigv4.py` so each
test controls exactly what is sent."""

import base64
import datetime
import hashlib
import os
import re
import socket
import zlib
from urllib.parse import quote, urlsplit

import pytest
from botocore.exceptions import ClientError

from conftest import client_for

import sigv4


@pytest.fixture
def creds(cluster):
    return cluster.env["AWS_ACCESS_KEY_ID"], cluster.env["AWS_SECRET_ACCESS_KEY"]


def host_of(cluster):
    return urlsplit(cluster.s3_url).netloc


def signed(cluster, method, path, access, secret, body=b"", query=None, when=None, extra=None):
    headers = sigv4.sign_headers(
        method,
        path,
        query or {},
        {"host": host_of(cluster), **(extra or {})},
        hashlib.sha256(body).hexdigest(),
        access,
        secret,
        when,
    )
    target = quote(path, safe="/-_.~") + ("?" + sigv4.canonical_query(query) if query else "")
    return sigv4.send(cluster.s3_url, method, target, headers, body)


def error_code(xml):
    m = re.search(rb"<Code>([^<]+)</Code>", xml)
    return m.group(1).decode() if m else None


def test_a_correct_signature_works_and_errors_carry_request_ids(cluster, creds, bucket):
    status, headers, _ = signed(cluster, "PUT", f"/{bucket}/hello", *creds, body=b"hi")
    assert status == 200
    status, headers, body = signed(cluster, "GET", f"/{bucket}/hello", *creds)
    assert (status, body) == (200, b"hi")
    assert headers.get("x-amz-request-id")
    status, headers, body = signed(cluster, "GET", f"/{bucket}/missing", *creds)
    assert status == 404 and error_code(body) == "NoSuchKey"
    rid = headers["x-amz-request-id"]
    assert f"<RequestId>{rid}</RequestId>".encode() in body


def test_wrong_secret_unknown_key_and_anonymous_are_refused(cluster, creds, bucket):
    access, secret = creds
    status, _, body = signed(cluster, "GET", f"/{bucket}", access, "wrong" + secret)
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    status, _, body = signed(cluster, "GET", f"/{bucket}", "TKNOSUCHKEY000000000", secret)
    assert (status, error_code(body)) == (403, "InvalidAccessKeyId")
    status, _, body = sigv4.send(cluster.s3_url, "GET", f"/{bucket}", {"host": host_of(cluster)})
    assert status == 403
    # A wrong secret on a write stores nothing.
    status, _, _ = signed(cluster, "PUT", f"/{bucket}/forged", access, "wrong-secret", body=b"x")
    assert status == 403
    status, _, _ = signed(cluster, "HEAD", f"/{bucket}/forged", *creds)
    assert status == 404


def test_skewed_clocks_are_refused(cluster, creds, bucket):
    for minutes in (-20, 20):
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
        status, _, body = signed(cluster, "GET", f"/{bucket}", *creds, when=when)
        assert (status, error_code(body)) == (403, "RequestTimeTooSkewed"), minutes
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    status, _, _ = signed(cluster, "GET", f"/{bucket}", *creds, when=when)
    assert status == 200


def test_presigned_urls_expire_and_cannot_be_tampered_with(cluster, creds, bucket):
    signed(cluster, "PUT", f"/{bucket}/p", *creds, body=b"presigned")
    host = host_of(cluster)
    good = sigv4.presign("GET", host, f"/{bucket}/p", *creds)
    status, _, body = sigv4.send(cluster.s3_url, "GET", good, {"host": host})
    assert (status, body) == (200, b"presigned")
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    expired = sigv4.presign("GET", host, f"/{bucket}/p", *creds, expires=60, when=old)
    status, _, body = sigv4.send(cluster.s3_url, "GET", expired, {"host": host})
    assert (status, error_code(body)) == (403, "AccessDenied")
    assert b"expired" in body.lower()
    tampered = good.replace(f"/{bucket}/p?", f"/{bucket}/other?")
    status, _, body = sigv4.send(cluster.s3_url, "GET", tampered, {"host": host})
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    longer = good.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
    status, _, body = sigv4.send(cluster.s3_url, "GET", longer, {"host": host})
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")


def test_malformed_xml_is_refused_and_changes_nothing(cluster, creds, bucket):
    signed(cluster, "PUT", f"/{bucket}/keep", *creds, body=b"keep me")
    bad = b"<Delete><Object><Key>keep</Key></Object"
    md5 = base64.b64encode(hashlib.md5(bad).digest()).decode()
    status, _, body = signed(cluster, "POST", f"/{bucket}", *creds, body=bad, query={"delete": ""}, extra={"content-md5": md5})
    assert (status, error_code(body)) == (400, "MalformedXML")
    status, _, body = signed(cluster, "GET", f"/{bucket}/keep", *creds)
    assert (status, body) == (200, b"keep me")
    status, _, body = signed(
        cluster, "PUT", f"/{bucket}", *creds, body=b"<VersioningConfiguration><Status>Maybe", query={"versioning": ""}
    )
    assert status == 400 and error_code(body) == "MalformedXML"


def test_a_body_shorter_than_its_content_length_stores_nothing(cluster, creds, bucket):
    access, secret = creds
    path = f"/{bucket}/truncated"
    headers = sigv4.sign_headers(
        "PUT", path, {}, {"host": host_of(cluster), "content-length": "1000000"}, sigv4.UNSIGNED, access, secret
    )
    parts = urlsplit(cluster.s3_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(head.encode() + b"x" * 400_000)
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(4096)
        except OSError:
            pass
    status, _, _ = signed(cluster, "HEAD", path, *creds)
    assert status == 404


def test_virtual_hosted_style_addressing(cluster, creds, bucket):
    signed(cluster, "PUT", f"/{bucket}/vh", *creds, body=b"virtual")
    port = urlsplit(cluster.s3_url).port
    access, secret = creds
    host = f"{bucket}.localhost:{port}"
    headers = sigv4.sign_headers("GET", "/vh", {}, {"host": host}, hashlib.sha256(b"").hexdigest(), access, secret)
    status, _, body = sigv4.send(cluster.s3_url, "GET", "/vh", headers)
    assert (status, body) == (200, b"virtual")


def test_path_with_encoded_characters(cluster, creds, bucket):
    key = "sp ace/plus+/pct%/ü"
    status, _, _ = signed(cluster, "PUT", f"/{bucket}/{key}", *creds, body=b"enc")
    assert status == 200
    status, _, body = signed(cluster, "GET", f"/{bucket}/{key}", *creds)
    assert (status, body) == (200, b"enc")


def test_aws_chunked_signed_payload(cluster, creds, bucket):
    data = os.urandom(300_000)
    path = f"/{bucket}/chunked"
    headers, body = sigv4.aws_chunked(path, host_of(cluster), data, *creds)
    status, _, resp = sigv4.send(cluster.s3_url, "PUT", path, headers, body)
    assert status == 200, resp
    status, _, got = signed(cluster, "GET", path, *creds)
    assert (status, got) == (200, data)
    # A chunk changed after signing is refused and the object keeps its content.
    headers, body = sigv4.aws_chunked(path, host_of(cluster), os.urandom(300_000), *creds, tamper_chunk=2)
    status, _, resp = sigv4.send(cluster.s3_url, "PUT", path, headers, body)
    assert status == 403 and error_code(resp) == "SignatureDoesNotMatch", resp
    status, _, got = signed(cluster, "GET", path, *creds)
    assert (status, got) == (200, data)


def test_unsigned_payload_with_checksum_trailer(cluster, creds, bucket):
    data = os.urandom(200_000)
    path = f"/{bucket}/trailer"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    headers, body = sigv4.unsigned_trailer(path, host_of(cluster), data, *creds, "x-amz-checksum-crc32", crc)
    status, resp_headers, resp = sigv4.send(cluster.s3_url, "PUT", path, headers, body)
    assert status == 200, resp
    status, _, got = signed(cluster, "GET", path, *creds)
    assert (status, got) == (200, data)
    # A wrong trailer checksum: BadDigest, and the earlier content stays.
    wrong = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
    headers, body = sigv4.unsigned_trailer(path, host_of(cluster), os.urandom(1000), *creds, "x-amz-checksum-crc32", wrong)
    status, _, resp = sigv4.send(cluster.s3_url, "PUT", path, headers, body)
    assert (status, error_code(resp)) == (400, "BadDigest"), resp
    status, _, got = signed(cluster, "GET", path, *creds)
    assert (status, got) == (200, data)


def test_entity_too_large_is_refused_before_any_data(cluster, creds, bucket):
    access, secret = creds
    path = f"/{bucket}/huge"
    six_gib = str(6 << 30)
    headers = sigv4.sign_headers(
        "PUT", path, {}, {"host": host_of(cluster), "content-length": six_gib}, sigv4.UNSIGNED, access, secret
    )
    parts = urlsplit(cluster.s3_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        s.sendall(head.encode())
        reply = b""
        while b"</Error>" not in reply:
            piece = s.recv(65536)
            if not piece:
                break
            reply += piece
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert error_code(reply) == "EntityTooLarge"
    status, _, _ = signed(cluster, "HEAD", path, *creds)
    assert status == 404


def test_quota_exceeded_is_a_clear_403_and_stores_nothing(cluster):
    """A user over quota gets QuotaExceeded (403, not retried by SDKs); nothing is kept."""
    import json

    user = cluster.create_user("carol")
    carol = client_for(cluster.s3_url, user["access_key"], user["secret_key"])
    carol.create_bucket(Bucket="quota")
    cluster.tessera("admin", "user", "quota", user["user_id"], "3MiB")
    carol.put_object(Bucket="quota", Key="a", Body=b"a" * (2 << 20))
    with pytest.raises(ClientError) as err:
        carol.put_object(Bucket="quota", Key="b", Body=b"b" * (2 << 20))
    assert err.value.response["Error"]["Code"] == "QuotaExceeded"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "quota" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        carol.head_object(Bucket="quota", Key="b")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    shown = json.loads(cluster.tessera("--json", "admin", "user", "show", user["user_id"]).stdout)
    assert shown["user_id"] == user["user_id"]
    assert shown["usage_bytes"] == 2 << 20
    assert shown["quota_bytes"] == 3 << 20
    assert shown["versions"] == 1
    # Raising the quota lets the same upload through.
    cluster.tessera("admin", "user", "quota", user["user_id"], "none")
    carol.put_object(Bucket="quota", Key="b", Body=b"b" * (2 << 20))
    assert carol.get_object(Bucket="quota", Key="b")["Body"].read() == b"b" * (2 << 20)
