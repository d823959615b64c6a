"""Fixtures for the S3 compatibility tests: a real `tessera dev` cluster (metadata
node, six block stores, router with the S3 gateway) on 127.0.0.1, started once per
test session in a temporary data dir and stopped at the end; S3 clients for two users.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]


def binary(name):
    bin_dir = os.environ.get("TESSERA_BIN_DIR")
    if not bin_dir:
        target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
        bin_dir = os.path.join(target, "debug")
    path = Path(bin_dir) / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: build first (cargo build --bins) or set TESSERA_BIN_DIR")
    return str(path)


def read_env(path):
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


def wait_port(url, deadline):
    host, port = url.removeprefix("http://").split(":")
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not accept connections")


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.data = self.root / "data"
        self.log = open(self.root / "dev.log", "wb")
        self.proc = subprocess.Popen(
            [binary("tessera"), "dev", "--data", str(self.data)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        env_file = self.data / "env"
        while not env_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tessera dev exited: {(self.root / 'dev.log').read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError("tessera dev did not write its env file")
            time.sleep(0.05)
        self.env = read_env(env_file)
        self.s3_url = self.env["TESSERA_S3_ENDPOINT"]
        wait_port(self.s3_url, deadline)

    def cli_env(self, **extra):
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        env.pop("AWS_CA_BUNDLE", None)
        return env

    def tessera(self, *args, check=True, **extra_env):
        return subprocess.run(
            [binary("tessera"), *args], env=self.cli_env(**extra_env), capture_output=True, text=True, check=check,
            timeout=120,
        )

    def create_user(self, name):
        import json

        out = self.tessera("--json", "admin", "user", "create", name).stdout
        return json.loads(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def cluster():
    root = tempfile.mkdtemp(prefix="tessera-s3-")
    c = Cluster(root)
    try:
        yield c
    finally:
        c.stop()
        if os.environ.get("TESSERA_KEEP_TEST_DIRS") is None:
            shutil.rmtree(root, ignore_errors=True)


def client_for(url, access_key, secret_key, **config):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, **config),
    )


@pytest.fixture(scope="session")
def s3(cluster):
    return client_for(cluster.s3_url, cluster.env["AWS_ACCESS_KEY_ID"], cluster.env["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="session")
def bob(cluster):
    user = cluster.create_user("bob")
    return client_for(cluster.s3_url, user["access_key"], user["secret_key"])


@pytest.fixture
def bucket(s3):
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
