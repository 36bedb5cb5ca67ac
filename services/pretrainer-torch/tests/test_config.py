"""The configuration reads as libs/vlp reads it: same defaults, same checks naming the same field
with the same message, and the same config.json bytes (so the same lineage digest)."""
import pytest

from conftest import run_reference
from medsyn_pretrainer_torch.config import ConfigError, check_runnable, config_digest, parse_pretraining_config

PAIRS = {"real_pairs": ["data/pairs.jsonl"]}

CASES = [
    {"method": "convirt", "data": PAIRS},
    {"method": "METHOD_GLORIA", "data": {"synthetic_pairs": [{"uri": "s/p.jsonl", "sha256": ""}], "synthetic_ratio": 0.25, "disable_augmentation": True},
     "image_encoder": {"architecture": "resnet18", "image_size": 64, "width": 8}, "optimizer": {"learning_rate": 1e-8, "weight_decay": 1e-5},
     "text_encoder": {"layers": 1, "hidden_size": 32, "heads": 2, "max_length": 16, "vocab": {"uri": "v.txt"}}, "seed": 7, "temperature": 0.07,
     "method_options": {"prototypes": 5}, "schedule": {"warmup_steps": 3, "decay": "constant", "min_lr_ratio": 0.1}},
    {"method": 3, "data": PAIRS, "image_encoder": {"architecture": "vit_tiny", "image_size": 32, "width": 48}, "batch_size": 4},
    {"data": PAIRS},
    {"method": "simclr", "data": PAIRS},
    {"method": "convirt", "data": PAIRS, "batch_size": 1},
    {"method": "convirt", "data": PAIRS, "batch_size": 0},
    {"method": "convirt", "data": PAIRS, "batch_size": 2.5},
    {"method": "convirt", "data": PAIRS, "batch_size": "8"},
    {"method": "convirt", "data": PAIRS, "image_encoder": {"architecture": "vgg16"}},
    {"method": "convirt", "data": PAIRS, "image_encoder": {"image_size": 4096}},
    {"method": "convirt", "data": PAIRS, "image_encoder": {"architecture": "vit_small", "image_size": 40}},
    {"method": "convirt", "data": PAIRS, "text_encoder": {"hidden_size": 30, "heads": 4}},
    {"method": "convirt", "data": {"real_pairs": []}},
    {"method": "convirt", "data": {"real_pairs": [""]}},
    {"method": "convirt", "data": PAIRS, "data_typo": 1},
    {"method": "convirt", "data": {**PAIRS, "validation_fraction": 0.5}},
    {"method": "convirt", "data": PAIRS, "optimizer": {"name": "lamb"}},
    {"method": "convirt", "data": PAIRS, "optimizer": {"learning_rate": 0}},
    {"method": "convirt", "data": PAIRS, "gradient_accumulation": 2},
    {"method": "convirt", "data": PAIRS, "method_options": {"prototypes": "many"}},
    {"method": "convirt", "data": PAIRS, "seed": -1},
]


def outcome(value):
    try:
        config = parse_pretraining_config(value)
    except ConfigError as error:
        return {"error": {"field": error.field, "message": str(error)}}
    return {"config": config, "sha256": config_digest(config)[1]}


def test_every_case_parses_to_what_libs_vlp_makes_of_it(tmp_path):
    cases = tmp_path / "cases.json"
    cases.write_text(__import__("json").dumps(CASES))
    reference = run_reference("parse-config", cases)
    for value, want in zip(CASES, reference):
        assert outcome(value) == want, value


def test_a_bad_setting_is_named_by_its_snake_case_path():
    with pytest.raises(ConfigError) as caught:
        parse_pretraining_config({"method": "mgca", "data": PAIRS, "schedule": {"warmup_steps": -2}})
    assert caught.value.field == "schedule.warmup_steps"
    assert str(caught.value) == "schedule.warmup_steps: must be >= 0, got -2"


@pytest.mark.parametrize("value, field", [
    # onnxruntime's WebGPU provider has no PyTorch counterpart.
    ({"execution_provider": "webgpu"}, "execution_provider"),
    # libs/vlp finds these when the job builds its model; here the request is refused.
    ({"image_encoder": {"architecture": "vit_small", "image_size": 40}}, "image_encoder.image_size"),
    ({"image_encoder": {"architecture": "vit_tiny", "width": 100}}, "image_encoder.width"),
])
def test_what_cannot_run_is_refused_before_a_job_starts(value, field):
    config = parse_pretraining_config({"method": "convirt", "data": PAIRS, **value})
    with pytest.raises(ConfigError) as caught:
        check_runnable(config)
    assert caught.value.field == field


def test_the_multi_node_example_configuration_of_the_gpu_torch_overlay_runs_as_it_is():
    import yaml

    from conftest import REPO_ROOT

    text = (REPO_ROOT / "deploy" / "k8s" / "overlays" / "gpu-torch" / "pretrain-config.yaml").read_text()
    config = parse_pretraining_config(yaml.safe_load(text))
    check_runnable(config)
    assert config["executionProvider"] == "cuda"
