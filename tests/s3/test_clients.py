"""Real S3 clients against a real cluster: aws-cli, rclone and s3cmd, each checked by
the bytes that come back; and the same files seen through the native `tessera` CLI."""

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

MIB = 1 << 20


def need(tool):
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: run .ci/setup-s3-clients")
    return path


def run(cmd, env, cwd=None):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def make_tree(root: Path, seed: int):
    rng = __import__("random").Random(seed)
    files = {
        "a.txt": b"hello\n",
        "empty": b"",
        "dir/b.bin": rng.randbytes(300_000),
        "dir/sub/c with space.txt": b"spaces",
        "dir/sub/ünï.txt": "unicode".encode(),
        "big/large.bin": rng.randbytes(12 * MIB + 5),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def same_tree(a: Path, b: Path):
    def listing(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    assert listing(a) == listing(b)
    for rel in listing(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


@pytest.fixture
def name():
    return f"c-{uuid.uuid4().hex[:10]}"


def test_aws_cli_cp_sync_ls_rm_and_s3api(cluster, tmp_path, name):
    aws = need("aws")
    env = cluster.cli_env()
    ep = ["--endpoint-url", cluster.s3_url]
    run([aws, *ep, "s3", "mb", f"s3://{name}"], env)
    src = tmp_path / "src"
    files = make_tree(src, 1)
    # A 12 MiB file goes up as a multipart upload (aws-cli's threshold is 8 MiB).
    run([aws, *ep, "s3", "cp", str(src / "big/large.bin"), f"s3://{name}/single/large.bin"], env)
    run([aws, *ep, "s3", "cp", f"s3://{name}/single/large.bin", str(tmp_path / "back.bin")], env)
    assert (tmp_path / "back.bin").read_bytes() == files["big/large.bin"]
    run([aws, *ep, "s3", "sync", str(src), f"s3://{name}/tree"], env)
    listed = run([aws, *ep, "s3", "ls", "--recursive", f"s3://{name}/tree/"], env)
    for rel in files:
        assert f"tree/{rel}" in listed, rel
    down = tmp_path / "down"
    run([aws, *ep, "s3", "sync", f"s3://{name}/tree", str(down)], env)
    same_tree(src, down)
    # A second sync has nothing to do.
    again = run([aws, *ep, "s3", "sync", str(src), f"s3://{name}/tree"], env)
    assert "upload:" not in again
    run([aws, *ep, "s3", "rm", "--recursive", f"s3://{name}/tree"], env)
    assert "tree/" not in run([aws, *ep, "s3", "ls", "--recursive", f"s3://{name}/"], env)
    # s3api: versioning and a hand-driven multipart upload.
    run([aws, *ep, "s3api", "put-bucket-versioning", "--bucket", name, "--versioning-configuration", "Status=Enabled"], env)
    status = json.loads(run([aws, *ep, "s3api", "get-bucket-versioning", "--bucket", name], env))
    assert status["Status"] == "Enabled"
    part = tmp_path / "part.bin"
    part.write_bytes(os.urandom(5 * MIB))
    up = json.loads(run([aws, *ep, "s3api", "create-multipart-upload", "--bucket", name, "--key", "mp"], env))
    etag = json.loads(
        run(
            [aws, *ep, "s3api", "upload-part", "--bucket", name, "--key", "mp", "--part-number", "1", "--upload-id",
             up["UploadId"], "--body", str(part)],
            env,
        )
    )["ETag"]
    parts = json.dumps({"Parts": [{"PartNumber": 1, "ETag": etag}]})
    run(
        [aws, *ep, "s3api", "complete-multipart-upload", "--bucket", name, "--key", "mp", "--upload-id", up["UploadId"],
         "--multipart-upload", parts],
        env,
    )
    run([aws, *ep, "s3api", "put-object", "--bucket", name, "--key", "mp", "--body", str(src / "a.txt")], env)
    versions = json.loads(run([aws, *ep, "s3api", "list-object-versions", "--bucket", name, "--prefix", "mp"], env))
    assert len(versions["Versions"]) == 2
    old = versions["Versions"][1]["VersionId"]
    run([aws, *ep, "s3api", "get-object", "--bucket", name, "--key", "mp", "--version-id", old, str(tmp_path / "old")], env)
    assert (tmp_path / "old").read_bytes() == part.read_bytes()


def rclone_env(cluster):
    env = cluster.cli_env()
    env.update(
        {
            "RCLONE_CONFIG_T_TYPE": "s3",
            "RCLONE_CONFIG_T_PROVIDER": "Other",
            "RCLONE_CONFIG_T_ACCESS_KEY_ID": cluster.env["AWS_ACCESS_KEY_ID"],
            "RCLONE_CONFIG_T_SECRET_ACCESS_KEY": cluster.env["AWS_SECRET_ACCESS_KEY"],
            "RCLONE_CONFIG_T_ENDPOINT": cluster.s3_url,
            "RCLONE_CONFIG_T_REGION": "us-east-1",
            "RCLONE_CONFIG_T_FORCE_PATH_STYLE": "true",
        }
    )
    return env


def test_rclone_sync_both_ways_and_check(cluster, tmp_path, name):
    rclone = need("rclone")
    env = rclone_env(cluster)
    src = tmp_path / "src"
    make_tree(src, 2)
    run([rclone, "mkdir", f"t:{name}"], env)
    run([rclone, "sync", str(src), f"t:{name}/tree", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"], env)
    run([rclone, "check", str(src), f"t:{name}/tree"], env)
    # Change the local tree, sync again: remote follows (deletes included).
    (src / "a.txt").write_bytes(b"changed\n")
    (src / "dir/b.bin").unlink()
    (src / "new.txt").write_bytes(b"new")
    run([rclone, "sync", str(src), f"t:{name}/tree"], env)
    run([rclone, "check", str(src), f"t:{name}/tree"], env)
    back = tmp_path / "back"
    run([rclone, "sync", f"t:{name}/tree", str(back)], env)
    same_tree(src, back)
    listed = run([rclone, "lsf", "-R", f"t:{name}/tree"], env).split()
    assert "new.txt" in listed and "dir/b.bin" not in listed


def test_s3cmd_put_get_ls_del(cluster, tmp_path, name):
    s3cmd = need("s3cmd")
    host = cluster.s3_url.removeprefix("http://")
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {cluster.env['AWS_ACCESS_KEY_ID']}\n"
        f"secret_key = {cluster.env['AWS_SECRET_ACCESS_KEY']}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"
        "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
    )
    env = cluster.cli_env()
    base = [s3cmd, "-c", str(cfg)]
    run([*base, "mb", f"s3://{name}"], env)
    data = os.urandom(20 * MIB + 3)  # above s3cmd's 15 MiB multipart chunk
    (tmp_path / "f.bin").write_bytes(data)
    (tmp_path / "small.txt").write_bytes(b"small")
    run([*base, "put", str(tmp_path / "f.bin"), f"s3://{name}/f.bin"], env)
    run([*base, "put", str(tmp_path / "small.txt"), f"s3://{name}/dir/small.txt"], env)
    run([*base, "get", f"s3://{name}/f.bin", str(tmp_path / "got.bin")], env)
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    listing = run([*base, "ls", "-r", f"s3://{name}"], env)
    assert f"s3://{name}/f.bin" in listing and f"s3://{name}/dir/small.txt" in listing
    run([*base, "del", f"s3://{name}/f.bin"], env)
    assert f"s3://{name}/f.bin" not in run([*base, "ls", "-r", f"s3://{name}"], env)
    run([*base, "info", f"s3://{name}"], env)


def test_s3_and_native_cli_see_the_same_bytes(cluster, s3, tmp_path, name):
    s3.create_bucket(Bucket=name)
    data = os.urandom(9 * MIB + 1)
    s3.put_object(Bucket=name, Key="from-s3/file.bin", Body=data)
    out = tmp_path / "native.bin"
    cluster.tessera("get", f"/{name}/from-s3/file.bin", str(out))
    assert out.read_bytes() == data
    other = os.urandom(2 * MIB)
    (tmp_path / "up.bin").write_bytes(other)
    cluster.tessera("put", str(tmp_path / "up.bin"), f"/{name}/from-native/up.bin")
    assert s3.get_object(Bucket=name, Key="from-native/up.bin")["Body"].read() == other
    # Native uploads get an MD5 ETag too, so S3 tools can compare it.
    assert s3.head_object(Bucket=name, Key="from-native/up.bin")["ETag"] == '"%s"' % hashlib.md5(other).hexdigest()
    # A multipart object reads back whole through the native API.
    up = s3.create_multipart_upload(Bucket=name, Key="mp.bin")["UploadId"]
    parts = [os.urandom(5 * MIB), os.urandom(100)]
    etags = [
        s3.upload_part(Bucket=name, Key="mp.bin", UploadId=up, PartNumber=i + 1, Body=p)["ETag"]
        for i, p in enumerate(parts)
    ]
    s3.complete_multipart_upload(
        Bucket=name,
        Key="mp.bin",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
    )
    cluster.tessera("get", f"/{name}/mp.bin", str(tmp_path / "mp.bin"))
    assert (tmp_path / "mp.bin").read_bytes() == b"".join(parts)


def test_s3_writes_appear_in_the_owners_change_log(cluster, s3, name):
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="logged.txt", Body=b"log me")
    s3.delete_object(Bucket=name, Key="logged.txt")
    lines = cluster.tessera("--json", "admin", "changes", "dev", "--limit", "100000").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    mine = [(e["kind"], e["device_id"]) for e in events if e["path"] == f"/{name}/logged.txt"]
    assert mine == [("Create", "s3"), ("Delete", "s3")], mine
