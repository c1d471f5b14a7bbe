"""Object storage: a local folder or ``s3://bucket/prefix`` behind one small interface.

Snapshots and reports are published to either place with the same code. The
S3 side follows the production design: server-side encryption (AES256) is
requested on every put, large files go up in parallel multipart uploads, and a
published folder's marker (its manifest) is written last so that a reader who
sees the marker sees every file. Every boto failure becomes one
:class:`~forestguard.errors.UserError` line that names the location and what to
fix; credentials never appear in it.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from .config import redact, settings
from .errors import UserError

#: Requested on every put, as the infrastructure design requires.
SSE: dict[str, str] = {"ServerSideEncryption": "AES256"}
MiB = 1024 * 1024
_CHUNK = MiB


def is_s3(url: str | os.PathLike[str]) -> bool:
    return str(url).lower().startswith("s3://")


def at(url: str | os.PathLike[str]) -> "Folder":
    """The folder a URL names: ``s3://bucket/prefix`` or a local path."""
    return S3Folder.parse(str(url)) if is_s3(url) else LocalFolder(Path(url))


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """(hex digest, size) of everything left in ``stream``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as stream:
        return sha256_stream(stream)


class Folder(abc.ABC):
    """A place holding named objects; names are ``/``-separated and relative to it."""

    url: str

    @abc.abstractmethod
    def child(self, name: str) -> "Folder": ...

    def uri(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"

    @abc.abstractmethod
    def put_file(self, name: str, source: Path) -> None:
        """Store a local file under ``name`` (atomically replacing what was there)."""

    @abc.abstractmethod
    def put_bytes(self, name: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def get_file(self, name: str, target: Path) -> None:
        """Copy an object to a local file."""

    @abc.abstractmethod
    def open_read(self, name: str) -> Any:
        """A context manager yielding a binary stream of the object (for hashing on the fly)."""

    def read_bytes(self, name: str) -> bytes:
        with self.open_read(name) as stream:
            return stream.read()

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def list_prefixes(self) -> list[str]:
        """Names of the immediate sub-folders, sorted (hidden ``.names`` excluded)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class LocalFolder(Folder):
    """A directory on a local (or mounted) file system."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)

    def child(self, name: str) -> "LocalFolder":
        return LocalFolder(self.path / name)

    def uri(self, name: str) -> str:
        return str(self.path / name)

    def _write(self, name: str, fill: Callable[[IO[bytes]], object]) -> None:
        """Write through a temporary sibling and rename: readers see the old file or the new one."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
            fill(tmp)
        os.replace(tmp.name, target)

    def put_file(self, name: str, source: Path) -> None:
        with Path(source).open("rb") as src:
            self._write(name, lambda tmp: shutil.copyfileobj(src, tmp, _CHUNK))

    def put_bytes(self, name: str, data: bytes) -> None:
        self._write(name, lambda tmp: tmp.write(data))

    def get_file(self, name: str, target: Path) -> None:
        with self.open_read(name) as src, Path(target).open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)

    @contextmanager
    def open_read(self, name: str) -> Iterator[IO[bytes]]:
        try:
            stream = (self.path / name).open("rb")
        except FileNotFoundError:
            raise UserError(f"{self.path / name}: no such file") from None
        except OSError as exc:
            raise UserError(f"{self.path / name}: {exc.strerror}") from None
        with stream:
            yield stream

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def list_prefixes(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))


def transfer_config(threshold: int = 64 * MiB, chunk: int = 16 * MiB, concurrency: int = 4):
    """Multipart settings: parts of ``chunk`` bytes, ``concurrency`` at a time, above ``threshold``."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=threshold, multipart_chunksize=chunk, max_concurrency=concurrency)


def s3_client() -> Any:
    """An S3 client: endpoint from ``AWS_ENDPOINT_URL``, credentials from the standard AWS chain."""
    import boto3
    from botocore.config import Config

    endpoint = settings().aws_endpoint_url
    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 4, "mode": "standard"},
        # S3-compatible servers (MinIO, moto) rarely resolve bucket sub-domains.
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def describe_s3_error(exc: BaseException, url: str) -> str:
    """One line saying what went wrong with ``url`` and what to check; never a secret."""
    from boto3.exceptions import S3UploadFailedError
    from botocore import exceptions as bce

    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, Exception):
        exc = exc.__context__  # boto3 wraps the ClientError that says why
    bucket = url[5:].split("/", 1)[0]
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role"
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ReadTimeoutError)):
        endpoint = settings().aws_endpoint_url or "AWS S3"
        return f"cannot reach {redact(endpoint)} for {url}: {type(exc).__name__} (check AWS_ENDPOINT_URL and the network)"
    if isinstance(exc, bce.ParamValidationError):
        return f"invalid S3 location {url}: {' '.join(str(exc).split())}"
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = _status(exc)
        if code == "NoSuchBucket":
            return _no_bucket(bucket, url)
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return f"{url}: no such object"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
            return f"S3 rejected the credentials for {url} ({code}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
            return f"access denied to {url}: these credentials may not use bucket {bucket!r} (check its policy and the IAM permissions)"
        message = " ".join(str(error.get("Message", "")).split())
        return f"S3 error on {url}: {code or status}{': ' + message if message else ''}"
    return f"S3 error on {url}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _status(exc: Any) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _no_bucket(bucket: str, url: str) -> str:
    return f"S3 bucket {bucket!r} does not exist ({url}): create it or fix S3_BUCKET"


@contextmanager
def s3_errors(url: str) -> Iterator[None]:
    """Turn any boto failure inside the block into one UserError line about ``url``."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise UserError(describe_s3_error(exc, url)) from None


class S3Folder(Folder):
    """A key prefix in an S3 bucket (or an S3-compatible server)."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, transfer: Any = None) -> None:
        if not bucket:
            raise UserError("an S3 URL needs a bucket: s3://BUCKET/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self.transfer = transfer or transfer_config()

    @classmethod
    def parse(cls, url: str) -> "S3Folder":
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def child(self, name: str) -> "S3Folder":
        return S3Folder(self.bucket, self.key(name), client=self._client, transfer=self.transfer)

    def put_file(self, name: str, source: Path) -> None:
        with s3_errors(self.uri(name)):
            self.client.upload_file(str(source), self.bucket, self.key(name), ExtraArgs=dict(SSE), Config=self.transfer)

    def put_bytes(self, name: str, data: bytes) -> None:
        with s3_errors(self.uri(name)):
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, **SSE)

    def get_file(self, name: str, target: Path) -> None:
        with s3_errors(self.uri(name)):
            self.client.download_file(self.bucket, self.key(name), str(target), Config=self.transfer)

    @contextmanager
    def open_read(self, name: str) -> Iterator[IO[bytes]]:
        with s3_errors(self.uri(name)):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
            try:
                yield body
            finally:
                body.close()

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        with s3_errors(self.uri(name)):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(name))
                return True
            except ClientError as exc:
                if _status(exc) != 404:
                    raise
            # HEAD answers have no body: a 404 may mean the bucket itself is missing.
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) == 404:
                    raise UserError(_no_bucket(self.bucket, self.uri(name))) from None
                raise
        return False

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        with s3_errors(self.url):
            yield from self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, **kwargs)

    def list_prefixes(self) -> list[str]:
        names = [p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for page in self._pages(Delimiter="/") for p in page.get("CommonPrefixes", [])]
        return sorted(n for n in names if not n.startswith("."))


def publish_dir(local_dir: Path, destination: str | os.PathLike[str], *, marker: str = "manifest.json") -> Folder:
    """Copy a local folder to ``destination`` (local or S3): every file first, ``marker`` last.

    A reader that finds the marker can trust the whole set. If ``local_dir``
    has no ``marker`` file, one is written listing each file's size and sha256.
    """
    local_dir = Path(local_dir)
    target = at(destination)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file() and p.relative_to(local_dir).as_posix() != marker)
    for path in files:
        target.put_file(path.relative_to(local_dir).as_posix(), path)
    if (local_dir / marker).is_file():
        target.put_file(marker, local_dir / marker)
    else:
        listing = []
        for path in files:
            digest, size = sha256_file(path)
            listing.append({"path": path.relative_to(local_dir).as_posix(), "size": size, "sha256": digest})
        published = {"published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": listing}
        target.put_bytes(marker, json.dumps(published, indent=2).encode())
    return target
