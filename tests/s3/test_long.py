"""Long S3 runs, outside the default suite: set TESSERA_S3_LONG=1 to run them
(`TESSERA_S3_LONG=1 python3 -m pytest tests/s3/test_long.py`).

- a bucket of 100,000 keys listed page by page (TESSERA_S3_KEYS to change the count);
- a 10 GiB object through a multipart upload and back (TESSERA_S3_LARGE_GIB).
"""

import concurrent.futures
import hashlib
import io
import os
import time

import pytest
from boto3.s3.transfer import TransferConfig

MIB = 1 << 20

pytestmark = pytest.mark.skipif(not os.environ.get("TESSERA_S3_LONG"), reason="long run: set TESSERA_S3_LONG=1")


def test_listing_a_bucket_of_100k_keys_streams_in_pages(s3, bucket):
    n = int(os.environ.get("TESSERA_S3_KEYS", "100000"))
    keys = [f"d{i % 97:02}/k{i:07}" for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    paginator = s3.get_paginator("list_objects_v2")
    seen, pages, slowest = [], 0, 0.0
    t = time.monotonic()
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 1000}):
        now = time.monotonic()
        slowest = max(slowest, now - t)
        t = now
        pages += 1
        seen += [o["Key"] for o in page["Contents"]]
    assert seen == sorted(keys)
    assert pages == (n + 999) // 1000
    print(f"{n} keys in {pages} pages, slowest page {slowest * 1000:.0f} ms")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert len(top["CommonPrefixes"]) == min(97, n)


class Generated(io.RawIOBase):
    """`size` bytes of distinct pseudo-random content, produced as it is read."""

    def __init__(self, size, seed):
        self.size, self.pos, self.seed = size, 0, seed
        self.block, self.block_no = b"", -1

    def readable(self):
        return True

    def readinto(self, buf):
        if self.pos >= self.size:
            return 0
        no, off = divmod(self.pos, MIB)
        if no != self.block_no:
            self.block = hashlib.shake_256(f"{self.seed}:{no}".encode()).digest(MIB)
            self.block_no = no
        n = min(len(buf), MIB - off, self.size - self.pos)
        buf[:n] = self.block[off : off + n]
        self.pos += n
        return n


def test_a_10_gib_object_through_multipart(s3, bucket):
    size = int(float(os.environ.get("TESSERA_S3_LARGE_GIB", "10")) * (1 << 30))
    config = TransferConfig(multipart_chunksize=64 * MIB, max_concurrency=4)
    expected = hashlib.sha256()
    src = Generated(size, 7)
    while chunk := src.read(8 * MIB):
        expected.update(chunk)
    s3.upload_fileobj(io.BufferedReader(Generated(size, 7), 8 * MIB), bucket, "huge.bin", Config=config)
    assert s3.head_object(Bucket=bucket, Key="huge.bin")["ContentLength"] == size
    got = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key="huge.bin")["Body"]
    for chunk in body.iter_chunks(8 * MIB):
        got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()
