"""Image-report pairs as libs/vlp/src/data.ts reads them: the same manifests and skips, the same
seeded hold-out split and epoch order (libs/random's xorshift generator, bit for bit), so both
implementations train on the same pairs in the same order for a seed. Images decode with Pillow
(PNG, JPEG) and pydicom (DICOM); the augmentation draws the same kinds of transforms
(random resized crop 0.6-1, +-10 degrees, +-5 % shift, brightness / contrast +-0.2) from its
own seeded generator.
"""
import io
import math
import posixpath
from concurrent import futures

import numpy as np
from PIL import Image

from .config import ConfigError
from .store import ArtifactNotFound, InvalidKey, key_of, read_jsonl

M32 = 0xFFFFFFFF
# The pair manifest of libs/dataset/src/pair-manifest.ts: the field each writer writes first, then the
# older spellings still read (the synthesizer wrote image_uri, report_id and prompt before #19).
IMAGE_FIELDS = ("image", "image_uri")
ID_FIELDS = ("id", "report_id")
TEXT_FIELDS = ("report", "text", "prompt")


def seeded_random(seed):
    """libs/random seededRandom: xorshift32 (Marsaglia 2003); uniform [0, 1)."""
    state = ((seed & M32) ^ 0x9E3779B9) or 1

    def next_value():
        nonlocal state
        state = (state ^ (state << 13)) & M32
        state ^= state >> 17
        state = (state ^ (state << 5)) & M32
        return state / 4294967296

    return next_value


def seeded_shuffle(items, seed, salt):
    """Fisher-Yates drawing from seeded_random((seed * 1000003 + salt * 7919 + 17) mod 2^32), as libs/random seededShuffle."""
    random = seeded_random((seed * 1000003 + salt * 7919 + 17) % 2**32)
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = math.floor(random() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def load_pair_manifests(store, real, synthetic):
    """(records, skipped, inputs): records {index, source, imageKey, report, manifest, lineNumber[, id]};
    a missing or foreign manifest is a ConfigError naming its field."""
    return _read_manifests(store, (("real", real, lambda i: f"data.real_pairs[{i}]"), ("synthetic", synthetic, lambda i: f"data.synthetic_pairs[{i}]")))


def load_retrieval_pairs(store, manifest, after):
    """The held-out pairs of data.retrieval_pairs (read as real pairs), numbered after the `after` training records."""
    records, skipped, inputs = _read_manifests(store, (("real", [manifest], lambda i: "data.retrieval_pairs"),))
    return [{**r, "index": after + r["index"]} for r in records], skipped, inputs


def without_held_out(records, held_out):
    """Training pairs without the held-out ones: a pair sharing a record id (the same report) or an image with a
    held-out pair is left out, so no arm trains on a held-out report or image (as libs/vlp)."""
    ids = {r["id"] for r in held_out if r.get("id")}
    images = {r["imageKey"] for r in held_out}
    return [r for r in records if not (r.get("id") and r["id"] in ids) and r["imageKey"] not in images]


def _read_manifests(store, lists):
    records, skipped, inputs = [], [], []
    for source, uris, field in lists:
        for i, uri in enumerate(uris):
            try:
                key = key_of(store, uri)
            except InvalidKey:
                raise ConfigError(field(i), f"{uri} is not in the artifact store ({store.root_uri})") from None
            ref = store.stat(key)
            if ref is None:
                raise ConfigError(field(i), f"manifest {uri} not found")
            inputs.append({"uri": ref["uri"], "sha256": ref["sha256"]})
            folder = posixpath.dirname(key)
            for line_number, value, error in read_jsonl(store, key):
                def skip(reason):
                    skipped.append({"manifest": uri, "lineNumber": line_number, "reason": reason})

                if error:
                    skip(error)
                    continue
                image = next((value[f] for f in IMAGE_FIELDS if isinstance(value.get(f), str) and value[f]), None)
                report = next((value[f] for f in TEXT_FIELDS if isinstance(value.get(f), str) and value[f].strip()), None)
                if not image:
                    skip("no image reference")
                elif not report:
                    skip("no report text")
                elif value.get("accepted") is False:
                    skip("image rejected by the quality gate")
                else:
                    try:
                        image_key = store.key_of(image) if "://" in image else posixpath.normpath(image if folder == "" else posixpath.join(folder, image))
                    except InvalidKey:
                        skip("image outside the artifact store")
                        continue
                    record = {"index": len(records), "source": source, "imageKey": image_key, "report": report,
                              "manifest": uri, "lineNumber": line_number}
                    record_id = next((value[f] for f in ID_FIELDS if isinstance(value.get(f), str) and value[f]), None)
                    if record_id:
                        record["id"] = record_id
                    records.append(record)
    return records, skipped, inputs


def split_pairs(records, fraction, seed):
    """A seeded hold-out: the same records are validation in every run with this seed."""
    held = {r["index"] for r in seeded_shuffle(records, seed, 1)[: math.floor(len(records) * fraction)]}
    return [r for r in records if r["index"] not in held], [r for r in records if r["index"] in held]


def epoch_order(train, synthetic_ratio, seed, epoch):
    """Every pair once per epoch, shuffled by (seed, epoch); with both kinds and a ratio in (0, 1), the
    largest mix with that share of synthetic pairs that repeats none."""
    real = [r for r in train if r["source"] == "real"]
    synthetic = [r for r in train if r["source"] == "synthetic"]
    if not real or not synthetic:
        pool = train
    elif synthetic_ratio <= 0:
        pool = real
    elif synthetic_ratio >= 1:
        pool = synthetic
    else:
        size = math.floor(min(len(real) / (1 - synthetic_ratio), len(synthetic) / synthetic_ratio))
        n_synthetic = math.floor(size * synthetic_ratio + 0.5)  # JavaScript's Math.round
        pool = seeded_shuffle(real, seed, 1000 + epoch)[: size - n_synthetic] + seeded_shuffle(synthetic, seed, 2000 + epoch)[:n_synthetic]
    return seeded_shuffle(pool, seed, 3000 + epoch)


def tokenize_records(tokenizer, records, skipped):
    """(kept records, {index: (ids, mask)}); a report with no word piece is skipped and counted."""
    kept, tokens = [], {}
    for record in records:
        ids, mask = tokenizer.encode(record["report"])
        # [CLS] + at least one piece + [SEP].
        if sum(mask) < 3:
            skipped.append({"manifest": record["manifest"], "lineNumber": record["lineNumber"], "reason": "report has no word pieces"})
            continue
        tokens[record["index"]] = (ids, mask)
        kept.append(record)
    return kept, tokens


class ImageFormatError(ValueError):
    pass


def decode_image(data):
    """Gray float32 in [0, 1] from PNG / JPEG (8 or 16 bit) or DICOM (rescaled, VOI LUT, MONOCHROME1 inverted)."""
    if data[128:132] == b"DICM":
        return _decode_dicom(data)
    if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8")):
        raise ImageFormatError("unrecognised image format (expected PNG, JPEG or DICOM)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in ("I;16", "I;16B", "I"):
                pixels = np.asarray(image, dtype=np.float32) / 65535.0
            else:
                pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as error:
        kind = "PNG" if data.startswith(b"\x89PNG") else "JPEG"
        raise ImageFormatError(f"not a decodable {kind}: {error}") from None
    return np.ascontiguousarray(pixels)


def _decode_dicom(data):
    import pydicom
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32)
    except Exception as error:  # noqa: BLE001 - any decoder failure is a skipped record
        raise ImageFormatError(f"DICOM pixel data cannot be decoded: {type(error).__name__}") from None
    if pixels.ndim != 2:
        raise ImageFormatError(f"DICOM with {pixels.ndim} pixel dimensions; a single grayscale frame is expected")
    low, high = float(pixels.min()), float(pixels.max())
    pixels = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return 1.0 - pixels if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1" else pixels


def _resized(pixels, size, box=None):
    # Pillow's bilinear filter widens its support when shrinking (antialiased), as libs/imaging resize does.
    return np.asarray(Image.fromarray(pixels, mode="F").resize((size, size), Image.BILINEAR, box=box), dtype=np.float32)


def center_crop(pixels, size):
    h, w = pixels.shape
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    return _resized(pixels, size, (left, top, left + side, top + side))


def augment(pixels, size, random):
    """Random resized crop (area 0.6-1, ratio 3/4-4/3), rotation +-10 degrees, shift +-5 %, brightness and contrast +-0.2."""
    h, w = pixels.shape
    box = None
    for _ in range(10):
        area = h * w * (0.6 + 0.4 * random())
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * random())
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = math.floor(random() * (w - cw + 1)), math.floor(random() * (h - ch + 1))
            box = (left, top, left + cw, top + ch)
            break
    out = _resized(pixels, size, box) if box else center_crop(pixels, size)
    angle = (random() * 2 - 1) * 10
    shift = ((random() * 2 - 1) * 0.05 * size, (random() * 2 - 1) * 0.05 * size)
    out = np.asarray(Image.fromarray(out, mode="F").rotate(angle, Image.BILINEAR, translate=shift), dtype=np.float32)
    brightness, contrast = 1 + (random() * 2 - 1) * 0.2, 1 + (random() * 2 - 1) * 0.2
    mean = float(out.mean())
    return np.clip((out * brightness - mean) * contrast + mean, 0, 1).astype(np.float32)


class PairBatches:
    """Batches of the training pairs from a position {epoch, cursor} of the seeded epoch order. With
    several ranks each decodes only its shard of the global batch; images that fail to decode are
    found by all ranks together (`agree`), skipped and counted, and the batch refilled from the
    next records, so every rank builds the same batch and any position replays exactly."""

    def __init__(self, store, train, tokens, config, special_ids, rank=0, world=1, agree=None, cache_bytes=256 << 20):
        self.store, self.train, self.tokens, self.special_ids = store, train, tokens, set(special_ids)
        self.size = config["imageEncoder"]["imageSize"]
        self.batch_size, self.seed = config["batchSize"], config["seed"]
        self.ratio, self.augment = config["data"]["syntheticRatio"], config["data"]["augment"]
        self.rank, self.world, self.agree = rank, world, agree or (lambda failed: failed)
        self.shard = self.batch_size // world
        self.orders, self.cache, self.cached_bytes, self.cache_limit = {}, {}, 0, cache_bytes
        self.bad = set()
        self.pool = futures.ThreadPoolExecutor(4, thread_name_prefix="decode")

    def order(self, epoch):
        if epoch not in self.orders:
            self.orders.clear()
            self.orders[epoch] = epoch_order(self.train, self.ratio, self.seed, epoch)
        return self.orders[epoch]

    def steps_per_epoch(self):
        return len(self.order(0)) // self.batch_size

    def _select(self, epoch, cursor):
        """(records with their (epoch, position), next position): the next batch_size records not known to fail."""
        order = self.order(epoch)
        if len(order) - cursor < self.batch_size:
            epoch, cursor, order = epoch + 1, 0, self.order(epoch + 1)
        chosen = []
        while len(chosen) < self.batch_size:
            if cursor >= len(order):
                # Too many failures left this epoch short: continue with the next epoch's order.
                epoch, cursor, order = epoch + 1, 0, self.order(epoch + 1)
                if len(order) - len(self.bad) < self.batch_size:
                    raise RuntimeError(f"fewer than batch_size ({self.batch_size}) pairs remain after skipping images that fail to decode")
            record = order[cursor]
            if record["imageKey"] not in self.bad:
                chosen.append((record, epoch, cursor))
            cursor += 1
        return chosen, {"epoch": epoch, "cursor": cursor}

    def load(self, position):
        """(tensors of this rank's shard, global record indices, next position, skipped records)."""
        skipped = []
        while True:
            chosen, following = self._select(position["epoch"], position["cursor"])
            mine = chosen[self.rank * self.shard:(self.rank + 1) * self.shard]
            decoded = list(self.pool.map(self._prepared, mine))
            failed = [0] * self.batch_size
            for slot, image in enumerate(decoded):
                if isinstance(image, Exception):
                    failed[self.rank * self.shard + slot] = 1
            failed = self.agree(failed)
            if not any(failed):
                break
            for (record, _, _), bad in zip(chosen, failed):
                if bad and record["imageKey"] not in self.bad:
                    self.bad.add(record["imageKey"])
                    skipped.append({"manifest": record["manifest"], "lineNumber": record["lineNumber"], "reason": "image failed to decode"})
        return self._tensors(mine, decoded), [r["index"] for r, _, _ in chosen], following, skipped

    def prefetch(self, position):
        """Starts decoding (into the cache) the images this rank will need from position on."""
        try:
            chosen, _ = self._select(position["epoch"], position["cursor"])
        except RuntimeError:
            return
        for record, _, _ in chosen[self.rank * self.shard:(self.rank + 1) * self.shard]:
            self.pool.submit(self._decoded, record["imageKey"])

    def _decoded(self, key):
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pixels = decode_image(self.store.get_bytes(key))
        # Keep at most twice the training size on the short side: crops and resizes need no more.
        h, w = pixels.shape
        limit = 2 * self.size
        if min(h, w) > limit:
            scale = limit / min(h, w)
            pixels = np.asarray(Image.fromarray(pixels, mode="F").resize((round(w * scale), round(h * scale)), Image.BILINEAR), dtype=np.float32)
        if self.cached_bytes + pixels.nbytes <= self.cache_limit:
            self.cache[key] = pixels
            self.cached_bytes += pixels.nbytes
        return pixels

    def _prepared(self, item):
        record, epoch, at = item
        try:
            pixels = self._decoded(record["imageKey"])
        except (ArtifactNotFound, ImageFormatError) as error:
            return error
        if self.augment:
            return augment(pixels, self.size, seeded_random((self.seed * 2654435761 + epoch * 97 + at * 31337) % 2**32))
        return center_crop(pixels, self.size)

    def _tensors(self, mine, images):
        import torch

        ids = torch.tensor([self.tokens[r["index"]][0] for r, _, _ in mine], dtype=torch.long)
        mask = torch.tensor([self.tokens[r["index"]][1] for r, _, _ in mine], dtype=torch.long)
        words = torch.tensor([[1.0 if m == 1 and i not in self.special_ids else 0.0 for i, m in zip(*self.tokens[r["index"]])] for r, _, _ in mine])
        pixels = (torch.from_numpy(np.stack(images))[:, None] - 0.5) / 0.5
        return {"pixel_values": pixels, "input_ids": ids, "attention_mask": mask, "word_mask": words}
