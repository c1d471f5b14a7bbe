"""Object storage: the same operations on a local folder and on a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from forestguard import storage
from forestguard.cli import main
from forestguard.errors import UserError


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI in-process; return its stderr after checking it is one line and exit code 1."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def _exercise(folder: storage.Folder, tmp_path: Path) -> None:
    """The contract every Folder keeps, checked against plain bytes written by the test."""
    payload = os.urandom(300_000)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    folder.put_file("a/one.bin", source)
    folder.put_bytes("b/two.txt", b"two")
    folder.put_bytes(".hidden/x", b"x")

    assert folder.exists("a/one.bin") and folder.exists("b/two.txt")
    assert not folder.exists("a/missing.bin")
    assert folder.read_bytes("a/one.bin") == payload
    target = tmp_path / "copy.bin"
    folder.get_file("a/one.bin", target)
    assert target.read_bytes() == payload
    with folder.open_read("a/one.bin") as stream:
        assert storage.sha256_stream(stream) == (hashlib.sha256(payload).hexdigest(), len(payload))
    assert folder.list_prefixes() == ["a", "b"]
    assert folder.child("a").read_bytes("one.bin") == payload

    with pytest.raises(UserError, match="no such"):
        folder.read_bytes("b/missing.txt")


def _publish_source(tmp_path: Path) -> Path:
    source = tmp_path / "run"
    (source / "figures").mkdir(parents=True)
    (source / "stats.json").write_text('{"zones": 3}')
    (source / "report.html").write_text("<html></html>")
    (source / "figures" / "map.png").write_bytes(os.urandom(5000))
    return source


def test_local_folder_contract(tmp_path: Path) -> None:
    _exercise(storage.at(tmp_path / "store"), tmp_path)


def test_publish_dir_writes_a_marker_listing_every_file(tmp_path: Path) -> None:
    source = _publish_source(tmp_path)
    target = storage.publish_dir(source, tmp_path / "published" / "run-1")
    marker = json.loads(target.read_bytes("manifest.json"))
    expected = {
        p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in source.rglob("*") if p.is_file()
    }
    assert {f["path"]: f["sha256"] for f in marker["files"]} == expected
    assert (tmp_path / "published" / "run-1" / "figures" / "map.png").read_bytes() == (source / "figures" / "map.png").read_bytes()


@pytest.mark.s3
def test_s3_folder_contract(s3, tmp_path: Path) -> None:
    _exercise(storage.at(s3.url()), tmp_path)


@pytest.mark.s3
def test_every_put_requests_aes256(s3, tmp_path: Path) -> None:
    source = _publish_source(tmp_path)
    storage.publish_dir(source, s3.url("reports", "run-1"))
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix)["Contents"]]
    assert sorted(k.rsplit("/run-1/", 1)[1] for k in keys) == ["figures/map.png", "manifest.json", "report.html", "stats.json"]
    for key in keys:
        assert client.head_object(Bucket=s3.bucket, Key=key)["ServerSideEncryption"] == "AES256", key


@pytest.mark.s3
def test_large_files_go_up_in_encrypted_multipart_uploads(s3, tmp_path: Path) -> None:
    payload = os.urandom(11 * storage.MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    folder = storage.S3Folder.parse(s3.url())
    folder.transfer = storage.transfer_config(threshold=5 * storage.MiB, chunk=5 * storage.MiB)
    folder.put_file("big.bin", source)
    head = s3.client().head_object(Bucket=s3.bucket, Key=f"{s3.prefix}/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3 names multipart objects '<md5>-<parts>'
    assert head["ServerSideEncryption"] == "AES256"
    assert folder.read_bytes("big.bin") == payload


@pytest.mark.s3
def test_publish_dir_writes_the_marker_last(s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _publish_source(tmp_path)
    put_file = storage.S3Folder.put_file
    calls = []

    def failing_second_put(self, name, path):
        calls.append(name)
        if len(calls) == 2:
            raise UserError("network gone")
        return put_file(self, name, path)

    monkeypatch.setattr(storage.S3Folder, "put_file", failing_second_put)
    with pytest.raises(UserError, match="network gone"):
        storage.publish_dir(source, s3.url("run-2"))
    folder = storage.at(s3.url("run-2"))
    assert folder.exists(calls[0]) and not folder.exists("manifest.json")


@pytest.mark.s3
def test_missing_bucket_is_one_line(s3, capsys) -> None:
    err = _one_error_line(capsys, ["snapshot", "list", "--out", "s3://no-such-bucket-fg/snapshots"])
    assert "bucket 'no-such-bucket-fg' does not exist" in err
    with pytest.raises(UserError, match="does not exist"):
        storage.at("s3://no-such-bucket-fg/x").exists("manifest.json")


@pytest.mark.s3
def test_rejected_credentials_are_one_line_without_the_secret(s3, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    err = _one_error_line(capsys, ["snapshot", "list", "--out", s3.url("snapshots")])
    assert "rejected the credentials" in err and "InvalidAccessKeyId" in err
    assert "wrong-secret-value" not in err


@pytest.mark.s3
def test_access_denied_is_one_line(s3, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.server.denied_access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.server.denied_secret_key)
    err = _one_error_line(capsys, ["snapshot", "verify", s3.url("snapshots", "0123456789abcdef")])
    assert f"access denied to s3://{s3.bucket}/" in err
    assert s3.server.denied_secret_key not in err


@pytest.mark.s3
def test_no_credentials_is_one_line(s3, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    err = _one_error_line(capsys, ["snapshot", "list", "--out", s3.url("snapshots")])
    assert "no AWS credentials" in err
