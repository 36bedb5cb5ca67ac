"""Reads medsyn dataset shards the way WebDataset does, with the standard library and PIL only.

WebDataset groups consecutive tar members by key, splitting each name with its `base_plus_ext`
pattern (the key is the name up to the first dot of its last path segment). Prints, as JSON, one
entry per sample: the key, the extensions present, the image's size and sha256, the text and the
parsed metadata. Usage: read_webdataset.py SHARD.tar [SHARD.tar ...]
"""
import hashlib
import io
import json
import re
import sys
import tarfile

from PIL import Image

BASE_PLUS_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset.tariterators.base_plus_ext


def samples(path):
    current = None
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            match = BASE_PLUS_EXT.match(member.name)
            if not match:
                raise SystemExit(f"{path}: member {member.name!r} has no key.ext form")
            key, ext = match.groups()
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key}
            current[ext] = tar.extractfile(member).read()
    if current is not None:
        yield current


out = []
for shard in sys.argv[1:]:
    for sample in samples(shard):
        image_ext = "png" if "png" in sample else "jpg"
        image = Image.open(io.BytesIO(sample[image_ext]))
        out.append({
            "shard": shard.rsplit("/", 1)[-1],
            "key": sample["__key__"],
            "exts": sorted(k for k in sample if k != "__key__"),
            "image_size": list(image.size),
            "image_sha256": hashlib.sha256(sample[image_ext]).hexdigest(),
            "text": sample["txt"].decode("utf-8"),
            "json": json.loads(sample["json"]),
        })
print(json.dumps(out))
