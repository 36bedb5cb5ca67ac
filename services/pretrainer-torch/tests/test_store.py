"""The store layout libs/artifact-store reads: what this service writes, the TypeScript store sees
with the same digests (objects and folders), on the filesystem and on S3 (s3rver, on loopback)."""
import json

import pytest

from conftest import run_reference
from medsyn_pretrainer_torch.store import (
    ArtifactNotFound, DigestMismatch, InvalidKey, MalformedDigest, StoreConfigError, open_store, verify_artifact_ref,
)


def fill(store):
    refs = {key: store.put(key, body) for key, body in {
        "bundle/encoder.json": '{"a": 1}\n', "bundle/tokenizer/vocab.txt": "[PAD]\n", "bundle/ü ber.onnx": b"\x00\x01" * 1000,
    }.items()}
    return refs


def test_the_typescript_store_reads_our_objects_sidecars_and_folder_digests(tmp_path):
    store = open_store(f"file://{tmp_path}")
    refs = fill(store)
    sidecar = json.loads((tmp_path / ".meta" / "bundle" / "encoder.json.json").read_text())
    assert sidecar == {"sha256": refs["bundle/encoder.json"]["sha256"], "sizeBytes": 9, "mediaType": "application/json"}
    seen = run_reference("store-digest", f"file://{tmp_path}", "bundle/ü ber.onnx")
    assert seen["sha256"] == seen["digest"] == refs["bundle/ü ber.onnx"]["sha256"]
    assert store.key_of(refs["bundle/ü ber.onnx"]["uri"]) == "bundle/ü ber.onnx"
    folder = run_reference("store-digest", f"file://{tmp_path}", "bundle", "folder")["digest"]
    verify_artifact_ref(store, store.uri_of("bundle/encoder.json").rsplit("/", 1)[0] + "/", folder, "config.x")


def test_references_are_checked_against_the_bytes(tmp_path):
    store = open_store(f"file://{tmp_path}")
    ref = store.put("pairs.jsonl", "{}\n")
    verify_artifact_ref(store, ref["uri"], ref["sha256"], "config.data.real_pairs[0]")
    verify_artifact_ref(store, ref["uri"], "", "config.data.real_pairs[0]")
    (tmp_path / "pairs.jsonl").write_text("[]\n")  # rewritten in place, same size: the sidecar would vouch for the old bytes
    with pytest.raises(DigestMismatch, match=r"config.data.real_pairs\[0\]: sha256 mismatch"):
        verify_artifact_ref(store, ref["uri"], ref["sha256"], "config.data.real_pairs[0]")
    with pytest.raises(MalformedDigest, match=r"\.sha256: must be 64"):
        verify_artifact_ref(store, ref["uri"], "ABC", "f")
    with pytest.raises(ArtifactNotFound):
        verify_artifact_ref(store, "missing/", "0" * 64, "f")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", ".tmp/x", ".meta/x", "a\\b", "dir/"])
def test_keys_outside_the_layout_are_refused(tmp_path, key):
    with pytest.raises(InvalidKey):
        open_store(f"file://{tmp_path}").put(key, b"")


def test_store_uris_are_checked_before_use():
    for uri, problem in [("ftp://x", "scheme"), ("s3://x", "bucket"), ("s3://bucket?part_size_mib=1", "MEDSYN_S3_ACCESS_KEY")]:
        with pytest.raises(StoreConfigError, match=problem):
            open_store(uri, env={})


def test_s3_objects_carry_their_sha256_as_the_typescript_store_reads_it(s3rver, monkeypatch):
    monkeypatch.setenv("MEDSYN_S3_ACCESS_KEY", "S3RVER")
    monkeypatch.setenv("MEDSYN_S3_SECRET_KEY", "S3RVER")
    uri = f"s3://medsyn/runs?endpoint={s3rver}&part_size_mib=5"
    store = open_store(uri)
    store.check()
    refs = fill(store)
    big = store.put("big.bin", b"x" * (11 << 20))  # three parts: multipart upload, then a copy that sets the sha256
    assert store.stat("big.bin")["sha256"] == big["sha256"]
    assert list(store.list("bundle/")) == ["bundle/encoder.json", "bundle/tokenizer/vocab.txt", "bundle/ü ber.onnx"]
    seen = run_reference("store-digest", uri, "bundle/encoder.json")
    assert seen["sha256"] == refs["bundle/encoder.json"]["sha256"]
    assert store.get_bytes("bundle/encoder.json") == b'{"a": 1}\n'
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("absent")
