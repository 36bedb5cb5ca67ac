"""Peer of bench/dataset.ts: the same export and import work with Python's tarfile (what
webdataset's ShardWriter and readers use underneath), on the same files.

export: read each image and its text, hash the image, write <key>.png/.txt/.json into tar shards
of SHARD_SIZE samples, hash each shard. import: hash each shard, read it, check each image's
sha256 against its .json, write the images and a pairs.jsonl. Prints {"export_seconds",
"import_seconds", "export_sync_seconds", "import_sync_seconds", "samples"} as JSON: the sync
times are of os.sync() after each phase, which tarfile never does and a durable peer would.

Usage: dataset_peer.py WORK_DIR SHARD_SIZE   (WORK_DIR holds samples.json: [{key, image, text}])
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import time


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(work, samples, shard_size):
    out = os.path.join(work, "peer-bundle")
    os.makedirs(out, exist_ok=True)
    shards = []
    for start in range(0, len(samples), shard_size):
        path = os.path.join(out, f"shard-{len(shards):06d}.tar")
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for s in samples[start:start + shard_size]:
                with open(s["image"], "rb") as f:
                    image = f.read()
                meta = {"key": s["key"], "id": s["key"], "image": s["key"] + ".png", "image_sha256": hashlib.sha256(image).hexdigest()}
                add(tar, s["key"] + ".png", image)
                add(tar, s["key"] + ".txt", s["text"].encode("utf-8"))
                add(tar, s["key"] + ".json", json.dumps(meta).encode("utf-8"))
        shards.append({"path": path, "sha256": sha256_file(path)})
    return shards


def import_(work, shards):
    out = os.path.join(work, "peer-import", "images")
    os.makedirs(out, exist_ok=True)
    for shard in shards:
        if sha256_file(shard["path"]) != shard["sha256"]:
            raise SystemExit(f"{shard['path']}: sha256 mismatch")
    pairs = []
    for shard in shards:
        with tarfile.open(shard["path"], "r") as tar:
            current = {}
            for member in tar:
                key, ext = member.name.split(".", 1)
                current.setdefault(key, {})[ext] = tar.extractfile(member).read()
            for key, members in current.items():
                meta = json.loads(members["json"])
                if hashlib.sha256(members["png"]).hexdigest() != meta["image_sha256"]:
                    raise SystemExit(f"{key}: image sha256 mismatch")
                with open(os.path.join(out, key + ".png"), "wb") as f:
                    f.write(members["png"])
                pairs.append({"image": "images/" + key + ".png", "report": members["txt"].decode("utf-8"), "id": key})
    with open(os.path.join(work, "peer-import", "pairs.jsonl"), "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    return len(pairs)


work, shard_size = sys.argv[1], int(sys.argv[2])
with open(os.path.join(work, "samples.json")) as f:
    samples = json.load(f)
t0 = time.perf_counter()
shards = export(work, samples, shard_size)
t1 = time.perf_counter()
# tarfile never syncs; os.sync() after each phase is what a durable peer would add (timed apart).
os.sync()
t1s = time.perf_counter()
n = import_(work, shards)
t2 = time.perf_counter()
os.sync()
t2s = time.perf_counter()
print(json.dumps({"export_seconds": t1 - t0, "import_seconds": t2 - t1s, "export_sync_seconds": t1s - t1, "import_sync_seconds": t2s - t2, "samples": n}))
