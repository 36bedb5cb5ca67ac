"""The artifact store as libs/artifact-store lays it out (docs/artifact-store.md), so this service
and the TypeScript ones share one store:

- `file://` : objects are files under the root, published by rename from `.tmp/`, each with a
  `.meta/<key>.json` sidecar {"sha256", "sizeBytes", "mediaType"} written before the object;
- `s3://bucket[/prefix]?endpoint=...&region=...&part_size_mib=...` : S3 or MinIO through boto3,
  the sha256 as user metadata (`x-amz-meta-sha256`), large objects uploaded in parts to `.tmp/`
  and published by a server-side copy.

Digests on references (tree digests of folders included) follow libs/artifact-store/src/digests.ts.
"""
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

CHUNK = 1 << 20
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
RESERVED_PREFIXES = (".tmp/", ".meta/")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson", "json": "application/json", "csv": "text/csv", "txt": "text/plain",
    "html": "text/html", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "dcm": "application/dicom",
    "onnx": "application/onnx", "safetensors": "application/octet-stream", "tar": "application/x-tar",
}


class StoreError(Exception):
    """Base of the store's errors; `permanent` says whether retrying can help."""

    permanent = True


class ArtifactNotFound(StoreError):
    def __init__(self, key):
        super().__init__(f"artifact not found: {key}")
        self.key = key


class InvalidKey(StoreError):
    def __init__(self, key, reason):
        super().__init__(f"invalid artifact key {json.dumps(key)}: {reason}")


class StoreConfigError(StoreError):
    pass


class StoreUnavailable(StoreError):
    permanent = False


class MalformedDigest(StoreError):
    def __init__(self, field):
        super().__init__(f"{field}.sha256: must be 64 lower-case hex characters (a sha256), or empty to skip the check")
        self.field = field


class DigestMismatch(StoreError):
    def __init__(self, field, uri, expected, found):
        super().__init__(f"{field}: sha256 mismatch for {uri} (expected {expected}, found {found})")
        self.field = field


def validate_key(key):
    if not key:
        raise InvalidKey(key, "empty")
    if len(key) > 1024:
        raise InvalidKey(key[:64], "longer than 1024 characters")
    if key.startswith("/"):
        raise InvalidKey(key, "must be relative")
    if key.endswith("/"):
        raise InvalidKey(key, "must name an object, not a folder")
    if re.search(r"[\x00-\x1f\x7f\\]", key):
        raise InvalidKey(key, "control characters and backslashes are not allowed")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(key, 'empty, "." and ".." path segments are not allowed')
    if key.startswith(RESERVED_PREFIXES):
        raise InvalidKey(key, "reserved prefix")
    return key


def guess_media_type(key):
    return MEDIA_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def _chunks(body):
    """bytes, str (UTF-8), a local Path, or a binary file object, as chunks."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body)
        return
    if isinstance(body, Path):
        with open(body, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
        return
    yield from iter(lambda: body.read(CHUNK), b"")


def _ref(uri, sha256, size, media_type):
    return {"uri": uri, "sha256": sha256, "sizeBytes": size, "mediaType": media_type}


class FileStore:
    def __init__(self, root):
        self.root = Path(root).resolve()
        self.root_uri = self.root.as_uri()

    def check(self):
        try:
            (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
            probe = self.root / ".tmp" / f"probe-{uuid.uuid4()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise StoreUnavailable(f"local store {self.root} is not writable: {error}") from error

    def put(self, key, body, media_type=None):
        target = self._path(key)
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / str(uuid.uuid4())
        h, size = hashlib.sha256(), 0
        try:
            with open(tmp, "xb") as f:
                for chunk in _chunks(body):
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                # Durable before the rename, so a crash cannot publish a truncated object.
                os.fsync(f.fileno())
            ref = _ref(self.uri_of(key), h.hexdigest(), size, media_type or guess_media_type(key))
            self._write_sidecar(key, ref)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return ref

    def open(self, key):
        path = self._path(key)
        if not path.is_file():
            raise ArtifactNotFound(key)
        return open(path, "rb")

    def get_bytes(self, key):
        with self.open(key) as f:
            return f.read()

    def stat(self, key):
        path = self._path(key)
        if not path.is_file():
            return None
        size = path.stat().st_size
        sidecar = self._read_sidecar(key)
        if sidecar and sidecar.get("sizeBytes") == size:
            return _ref(self.uri_of(key), sidecar["sha256"], size, sidecar["mediaType"])
        # Written by another tool (or a stale sidecar): hash it now and remember.
        ref = _ref(self.uri_of(key), self.sha256_of(key), size, (sidecar or {}).get("mediaType") or guess_media_type(key))
        self._write_sidecar(key, ref)
        return ref

    def sha256_of(self, key):
        # Always the bytes, never the sidecar: a file rewritten in place keeps a sidecar of the same size.
        h = hashlib.sha256()
        with self.open(key) as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        return h.hexdigest()

    def list(self, prefix):
        """Keys under prefix, in byte order (as S3 lists them), without the store's bookkeeping."""
        start = prefix[: prefix.rfind("/")] if "/" in prefix else ""
        for key in self._walk(start):
            if key.startswith(prefix):
                yield key

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)
        self._sidecar(key).unlink(missing_ok=True)

    def uri_of(self, key):
        # encodeURIComponent per segment, as the TypeScript store writes URIs.
        return self.root_uri + "/" + "/".join(quote(s, safe="!'()*") for s in validate_key(key).split("/"))

    def key_of(self, uri):
        if not uri.startswith(self.root_uri + "/"):
            raise InvalidKey(uri, f"not inside this store ({self.root_uri})")
        path = Path(unquote(urlparse(uri).path))
        try:
            relative = path.resolve().relative_to(self.root) if ".." in path.parts else path.relative_to(self.root)
        except ValueError:
            raise InvalidKey(uri, f"not inside this store ({self.root_uri})") from None
        return validate_key(relative.as_posix())

    def _path(self, key):
        return self.root.joinpath(*validate_key(key).split("/"))

    def _sidecar(self, key):
        return Path(str(self.root.joinpath(".meta", *validate_key(key).split("/"))) + ".json")

    def _read_sidecar(self, key):
        try:
            return json.loads(self._sidecar(key).read_text())
        except (OSError, ValueError):
            return None

    def _write_sidecar(self, key, ref):
        target = self._sidecar(key)
        tmp = self.root / ".tmp" / f"{uuid.uuid4()}.json"
        tmp.write_text(json.dumps({"sha256": ref["sha256"], "sizeBytes": ref["sizeBytes"], "mediaType": ref["mediaType"]}, separators=(",", ":")))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def _walk(self, rel):
        folder = self.root / rel if rel else self.root
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        # Folders sort as "name/" so keys come out in plain byte order.
        entries.sort(key=lambda e: (e.name + "/" if e.is_dir() else e.name).encode())
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if not rel and entry.name in (".tmp", ".meta"):
                continue
            if entry.is_dir():
                yield from self._walk(key)
            elif entry.is_file():
                yield key


class S3Store:
    """S3 / MinIO; objects carry their sha256 as user metadata, as the TypeScript store writes them."""

    def __init__(self, bucket, prefix, endpoint, access_key, secret_key, region, part_size):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.endpoint, self.part_size = bucket, prefix, endpoint, part_size
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 4, "mode": "standard"}, signature_version="s3v4"),
        )
        self.root_uri = f"s3://{bucket}" + (f"/{prefix.rstrip('/')}" if prefix else "")

    def _errors(self):
        from botocore.exceptions import BotoCoreError, ClientError

        return BotoCoreError, ClientError

    def check(self):
        BotoCoreError, ClientError = self._errors()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            raise StoreUnavailable(f"bucket {self.bucket} does not exist or is not usable at {self.endpoint}: {error}") from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"cannot use s3://{self.bucket} at {self.endpoint}: {error}") from error

    def ensure_bucket(self):
        BotoCoreError, ClientError = self._errors()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, key, body, media_type=None):
        name = self._name(key)
        media_type = media_type or guess_media_type(key)
        chunks = _parts(_chunks(body), self.part_size)
        first = next(chunks, b"")
        second = next(chunks, None)
        if second is None:
            # One short part: its digest is known before the upload, so one PUT publishes it.
            sha = hashlib.sha256(first).hexdigest()
            self.client.put_object(Bucket=self.bucket, Key=name, Body=first, ContentType=media_type, Metadata={"sha256": sha})
            return _ref(self.uri_of(key), sha, len(first), media_type)
        tmp = f"{self.prefix}.tmp/{uuid.uuid4()}"
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=tmp, ContentType=media_type)["UploadId"]
        h, size, parts, done = hashlib.sha256(), 0, [], False
        try:
            for part in _chain(first, second, chunks):
                h.update(part)
                size += len(part)
                etag = self.client.upload_part(Bucket=self.bucket, Key=tmp, UploadId=upload, PartNumber=len(parts) + 1, Body=part)["ETag"]
                parts.append({"PartNumber": len(parts) + 1, "ETag": etag})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=tmp, UploadId=upload, MultipartUpload={"Parts": parts})
            done = True
            sha = h.hexdigest()
            self.client.copy_object(Bucket=self.bucket, Key=name, CopySource={"Bucket": self.bucket, "Key": tmp},
                                    MetadataDirective="REPLACE", Metadata={"sha256": sha}, ContentType=media_type)
            return _ref(self.uri_of(key), sha, size, media_type)
        finally:
            if not done:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=tmp, UploadId=upload)
            self.client.delete_object(Bucket=self.bucket, Key=tmp)

    def open(self, key):
        _, ClientError = self._errors()
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as error:
            if _not_found(error):
                raise ArtifactNotFound(key) from None
            raise

    def get_bytes(self, key):
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    def stat(self, key):
        _, ClientError = self._errors()
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        sha = head.get("Metadata", {}).get("sha256") or _hash_stream(self.open(key))
        return _ref(self.uri_of(key), sha, head["ContentLength"], head.get("ContentType") or guess_media_type(key))

    def sha256_of(self, key):
        # S3 replaces an object whole, metadata with it: the recorded digest cannot go stale.
        ref = self.stat(key)
        if ref is None:
            raise ArtifactNotFound(key)
        return ref["sha256"]

    def list(self, prefix):
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if not key.startswith(".tmp/"):
                    yield key

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def uri_of(self, key):
        return f"{self.root_uri}/{validate_key(key)}"

    def key_of(self, uri):
        if not uri.startswith(self.root_uri + "/"):
            raise InvalidKey(uri, f"not inside this store ({self.root_uri})")
        return validate_key(uri[len(self.root_uri) + 1:])

    def _name(self, key):
        return self.prefix + validate_key(key)


def _not_found(error):
    return error.response.get("Error", {}).get("Code") in ("NoSuchKey", "NotFound", "NoSuchObject", "404")


def _hash_stream(stream):
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def _chain(first, second, rest):
    yield first
    yield second
    yield from rest


def _parts(chunks, size):
    """Re-chunks into parts of exactly `size` bytes (the last may be shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def open_store(uri, env=None):
    """The store a MEDSYN_STORE URI names (file:// or s3://); StoreConfigError naming what is wrong."""
    env = os.environ if env is None else env
    if uri.startswith("file://"):
        rest = uri[len("file://"):]
        if not rest:
            raise StoreConfigError("file:// store URI needs a path, e.g. file://./.medsyn")
        return FileStore(unquote(urlparse(uri).path) if rest.startswith("/") else os.path.abspath(unquote(rest)))
    if uri.startswith("s3://"):
        return _open_s3(uri, env)
    raise StoreConfigError(f"unsupported store URI scheme in {json.dumps(uri.split('?')[0])}: use file:// or s3://")


def _open_s3(uri, env):
    url = urlparse(uri)
    if url.username or url.password:
        raise StoreConfigError("s3 store URI must not carry credentials: set MEDSYN_S3_ACCESS_KEY and MEDSYN_S3_SECRET_KEY")
    bucket = url.hostname or ""
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
        raise StoreConfigError(f"invalid s3 bucket name {json.dumps(bucket)}")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    endpoint = query.get("endpoint") or env.get("MEDSYN_S3_ENDPOINT") or "https://s3.amazonaws.com"
    if not re.match(r"^https?://[^/]+", endpoint):
        raise StoreConfigError(f"invalid s3 endpoint {json.dumps(endpoint)}: expected e.g. http://minio:9000")
    access = env.get("MEDSYN_S3_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID")
    secret = env.get("MEDSYN_S3_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY")
    if not access:
        raise StoreConfigError("MEDSYN_S3_ACCESS_KEY (or AWS_ACCESS_KEY_ID) is required for an s3:// store")
    if not secret:
        raise StoreConfigError("MEDSYN_S3_SECRET_KEY (or AWS_SECRET_ACCESS_KEY) is required for an s3:// store")
    part_mib = query.get("part_size_mib", "16")
    if not part_mib.isdigit() or not 5 <= int(part_mib) <= 5120:
        raise StoreConfigError("part_size_mib must be an integer from 5 to 5120")
    prefix = unquote(url.path).strip("/")
    region = query.get("region") or env.get("MEDSYN_S3_REGION") or "us-east-1"
    return S3Store(bucket, f"{prefix}/" if prefix else "", endpoint, access, secret, region, int(part_mib) << 20)


def tree_digest(files):
    """sha256 of `<path>\\t<sha256>\\n` per file, in code-point (UTF-8 byte) order of the paths."""
    lines = sorted(files, key=lambda f: f[0].encode("utf-8"))
    return hashlib.sha256("".join(f"{p}\t{s}\n" for p, s in lines).encode("utf-8")).hexdigest()


def stored_digest(store, key, folder=False):
    """The object's sha256 or, when there is none (or `folder`), the tree digest under `key/`."""
    if not folder:
        try:
            return store.sha256_of(key)
        except ArtifactNotFound:
            pass
    prefix = key + "/"
    files = [(k[len(prefix):], store.sha256_of(k)) for k in store.list(prefix)]
    if not files:
        raise ArtifactNotFound(key)
    return tree_digest(files)


def key_of(store, uri_or_key):
    """A store key from a store URI, or a key as given."""
    return store.key_of(uri_or_key) if "://" in uri_or_key else validate_key(uri_or_key.lstrip("/"))


def verify_artifact_ref(store, uri, sha256, field, key=None):
    """Checks that the store holds at uri the bytes sha256 names (nothing to check when it is empty)."""
    if sha256 == "":
        return
    if not SHA256_HEX.match(sha256):
        raise MalformedDigest(field)
    trimmed = uri.rstrip("/")
    location = key or (store.key_of(trimmed) if "://" in trimmed else trimmed.lstrip("/"))
    found = stored_digest(store, location, uri.endswith("/"))
    if found != sha256:
        raise DigestMismatch(field, uri, sha256, found)


def read_jsonl(store, key):
    """(line number, value or None, error) per non-blank line; a bad line is reported, never fatal."""
    # Whole in memory: a 200k-pair manifest is tens of MB, and S3 bodies have no line iterator.
    for number, raw in enumerate(store.get_bytes(key).split(b"\n"), start=1):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield number, None, "invalid JSON"
            continue
        if isinstance(value, dict):
            yield number, value, None
        else:
            yield number, None, "not a JSON object"


def put_jsonl(store, key, records):
    return store.put(key, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records), "application/x-ndjson")
