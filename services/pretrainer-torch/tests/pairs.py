"""A small image-report corpus made on the fly (no real patient): 40 px radiograph-like images whose
bright region goes with the finding its report names, in the manifest layout the synthesizer
writes, plus one line that is not JSON and one image that does not decode."""
import io
import json

import numpy as np
from PIL import Image

FINDINGS = [
    ("left", "Opacity in the left lower lobe, consistent with pneumonia."),
    ("right", "Right pleural effusion with basal atelectasis."),
    ("top", "Apical pneumothorax on the right."),
    ("none", "No acute cardiopulmonary process. Lungs are clear."),
]


def image(finding, seed, size=40):
    rng = np.random.default_rng(seed)
    pixels = 0.3 + 0.05 * rng.standard_normal((size, size))
    half = size // 2
    region = {"left": np.s_[:, :half], "right": np.s_[:, half:], "top": np.s_[:half, :], "none": np.s_[0:0, 0:0]}[finding]
    pixels[region] += 0.4
    buffer = io.BytesIO()
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_pairs(store, count=24, prefix="data", broken=True):
    """Writes images and a manifest under prefix; returns the manifest's ref."""
    lines = []
    for i in range(count):
        finding, report = FINDINGS[i % len(FINDINGS)]
        store.put(f"{prefix}/images/{i:03d}.png", image(finding, i))
        lines.append(json.dumps({"image": f"images/{i:03d}.png", "report": f"FINDINGS: {report} Case {i % 3}."}))
    if broken:
        store.put(f"{prefix}/images/broken.png", b"\x89PNG not really")
        lines.append(json.dumps({"image": "images/broken.png", "report": "Clear lungs."}))
        lines.append("{not json")
    return store.put(f"{prefix}/pairs.jsonl", "\n".join(lines) + "\n")


def tiny_config(manifest_uri, method="convirt", **overrides):
    """The smallest model that still is the real architecture: ResNet-18 at width 4, a one-layer BERT."""
    config = {
        "method": method, "batch_size": 4, "epochs": 2, "seed": 3, "embedding_size": 8, "checkpoint_every_steps": 2,
        "image_encoder": {"architecture": "resnet18", "image_size": 32, "width": 4},
        "text_encoder": {"layers": 1, "hidden_size": 16, "heads": 2, "max_length": 16, "vocab_size": 120},
        "data": {"real_pairs": [manifest_uri], "validation_fraction": 0.2},
        "optimizer": {"learning_rate": 1e-3},
    }
    if method == "mgca":
        config["method_options"] = {"prototypes": 4}
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
    return config


def proto_config(manifest_uri, method, **overrides):
    """tiny_config as StartPretrainingRequest.config's JSON mapping (enum names, ArtifactRefs)."""
    config = tiny_config(manifest_uri, method, **overrides)
    config["method"] = f"METHOD_{method.upper()}"
    config["data"]["real_pairs"] = [{"uri": uri} for uri in config["data"]["real_pairs"]]
    return config
