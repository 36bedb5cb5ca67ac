"""Cross-implementation: the same batch through the same weights gives the same loss here and in
libs/vlp's ONNX training graph (its seeded initial parameters, loaded by name into our modules),
within 1e-4, for each method and both image encoder families."""
import json
import sys

import pytest
import torch

from conftest import REPO_ROOT, run_reference
from medsyn_pretrainer_torch.config import parse_pretraining_config
from medsyn_pretrainer_torch.losses import loss_options, vlp_loss
from medsyn_pretrainer_torch.models import VlpModel

sys.path.insert(0, str(REPO_ROOT / "libs" / "testing" / "python"))
from safetensors_io import load  # noqa: E402

torch.set_num_threads(1)
VOCAB = 40
BATCH = 4
LENGTH = 12
TEXT = {"layers": 1, "hidden_size": 32, "heads": 2, "max_length": LENGTH}
RESNET = {"architecture": "resnet18", "image_size": 64, "width": 8}
VIT = {"architecture": "vit_tiny", "image_size": 32, "width": 24}


def batch(seed, size):
    """A batch as data loading makes them: reports of different lengths, [CLS] w.. [SEP] [PAD]..."""
    g = torch.Generator().manual_seed(seed)
    lengths = [3, 7, 12, 5][:BATCH]
    mask = torch.tensor([[1 if t < n else 0 for t in range(LENGTH)] for n in lengths])
    ids = torch.randint(5, VOCAB, (BATCH, LENGTH), generator=g) * mask
    ids[:, 0] = 2
    for row, n in enumerate(lengths):
        ids[row, n - 1] = 3
    words = mask.clone().float()
    words[:, 0] = 0
    for row, n in enumerate(lengths):
        words[row, n - 1] = 0
    return {"pixel_values": torch.randn(BATCH, 1, size, size, generator=g), "input_ids": ids, "attention_mask": mask, "word_mask": words}


def ours(config, params, b):
    model = VlpModel(config, VOCAB)
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, f"libs/vlp parameters we do not have: {unexpected}"
    assert all(k.endswith("num_batches_tracked") for k in missing), f"our parameters libs/vlp does not have: {missing}"
    model.train()
    x = model(b["pixel_values"], b["input_ids"], b["attention_mask"])
    prototypes = model.prototypes.weight if config["method"] == "mgca" else None
    return vlp_loss(config["method"], x, b["word_mask"], prototypes, **loss_options(config))


@pytest.mark.parametrize("method, image, options", [
    ("convirt", RESNET, {}),
    ("gloria", RESNET, {}),
    ("mgca", RESNET, {"method_options": {"prototypes": 5}}),
    ("convirt", VIT, {"temperature": 0.2, "method_options": {"image_to_text_weight": 0.5}}),
    ("gloria", VIT, {"temperature": 0.2, "method_options": {"temperature1": 3}}),
    ("mgca", VIT, {"method_options": {"prototypes": 6, "sinkhorn_iterations": 2}}),
])
def test_the_loss_is_libs_vlps_on_the_same_batch_and_weights(tmp_path, method, image, options):
    raw = {"method": method, "batch_size": BATCH, "image_encoder": image, "text_encoder": TEXT, "embedding_size": 16, "seed": 3,
           "data": {"real_pairs": ["p.jsonl"]}, **options}
    config = parse_pretraining_config(raw)
    b = batch(11, image["image_size"])
    case = {"config": raw, "vocabSize": VOCAB, "batch": {k: {"dims": list(v.shape), "data": v.flatten().tolist()} for k, v in b.items()}}
    (tmp_path / "case.json").write_text(json.dumps(case))
    reference = run_reference("vlp-loss", tmp_path / "case.json", tmp_path / "params.safetensors")
    params, _ = load(tmp_path / "params.safetensors")
    loss, parts = ours(config, params, b)
    # float32 through two engines: agreement to ~1e-6 relative is typical; 1e-4 is the contract.
    assert abs(loss.item() - reference["loss"]) <= 1e-4 * max(1.0, abs(reference["loss"]))
    for name, value in reference["parts"].items():
        assert abs(parts[name].item() - value) <= 1e-4 * max(1.0, abs(value)), name
