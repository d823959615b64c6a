"""A small AWS Signature V4 signer for protocol tests that need what SDKs never send:
a chosen clock, a wrong secret, a tampered URL, a body that lies about its length."""

import datetime
import hashlib
import hmac
import http.client
from urllib.parse import quote, urlsplit

UNSIGNED = "UNSIGNED-PAYLOAD"


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _enc(s):
    return quote(s, safe="-_.~")


def signing_key(secret, day, region="us-east-1"):
    k = _hmac(("AWS4" + secret).encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


def canonical_query(query):
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(query.items()))


def sign_headers(method, path, query, headers, payload_hash, access, secret, when=None):
    """Adds x-amz-date, x-amz-content-sha256 and Authorization to `headers` (lower-case names)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {k.lower(): v for k, v in headers.items()}
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            canonical_query(query),
            "".join(f"{n}:{str(headers[n]).strip()}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    sig = hmac.new(signing_key(secret, day), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return headers


def presign(method, host, path, access, secret, expires=300, when=None, extra_query=None):
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    scope = f"{day}/us-east-1/s3/aws4_request"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
        **(extra_query or {}),
    }
    canonical = "\n".join([method, quote(path, safe="/-_.~"), canonical_query(query), f"host:{host}\n", "host", UNSIGNED])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    query["X-Amz-Signature"] = hmac.new(signing_key(secret, day), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{path}?{canonical_query(query)}"


def send(base_url, method, target, headers, body=b""):
    """Sends one request; returns (status, headers, body)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if "content-length" not in {k.lower() for k in headers}:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def aws_chunked(path, host, data, access, secret, chunk_size=64 * 1024, tamper_chunk=None):
    """Headers and body of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` upload: every chunk
    carries a signature chained from the request's. `tamper_chunk` flips a byte of
    that chunk after signing."""
    when = datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    scope = f"{day}/us-east-1/s3/aws4_request"
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    encoded_len = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    headers = sign_headers(
        "PUT",
        path,
        {},
        {
            "host": host,
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "content-length": str(encoded_len),
        },
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        access,
        secret,
        when,
    )
    prev = headers["authorization"].rsplit("Signature=", 1)[1]
    key = signing_key(secret, day)
    body = bytearray()
    for n, chunk in enumerate(chunks):
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()]
        )
        prev = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if n == tamper_chunk and chunk:
            chunk = bytes([chunk[0] ^ 1]) + chunk[1:]
        body += f"{len(chunk):x};chunk-signature={prev}\r\n".encode() + chunk + b"\r\n"
    return headers, bytes(body)


def unsigned_trailer(path, host, data, access, secret, trailer_name, trailer_value, chunk_size=64 * 1024):
    """Headers and body of a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` upload (what current
    SDKs send with a checksum): unsigned aws-chunked data, then the checksum as a trailer."""
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    body = bytearray()
    for chunk in chunks:
        body += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    body += f"0\r\n{trailer_name}:{trailer_value}\r\n\r\n".encode()
    headers = sign_headers(
        "PUT",
        path,
        {},
        {
            "host": host,
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": trailer_name,
            "content-length": str(len(body)),
        },
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        access,
        secret,
    )
    return headers, bytes(body)
