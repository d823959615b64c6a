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
