"""One-process training runs on a tiny model: the run's files where libs/vlp puts them, skips
counted, the same data order as libs/vlp, resume after a kill, and bad inputs failing naming the field."""
import json

import pytest
import torch

from conftest import run_reference
from medsyn_pretrainer_torch import train as trainer
from medsyn_pretrainer_torch.config import ConfigError, parse_pretraining_config
from medsyn_pretrainer_torch.data import load_pair_manifests, epoch_order, split_pairs
from medsyn_pretrainer_torch.store import open_store
from pairs import FINDINGS, image, tiny_config, write_pairs

torch.set_num_threads(1)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYN_STORE", f"file://{tmp_path}/store")
    return open_store(f"file://{tmp_path}/store")


def run(store, raw, prefix="runs/r1"):
    return trainer.train({"config": parse_pretraining_config(raw), "prefix": prefix})


def test_a_run_writes_libs_vlps_files_and_counts_what_it_skipped(store, capsys):
    manifest = write_pairs(store)
    assert run(store, tiny_config(manifest["uri"])) == 0
    result = json.loads(store.get_bytes("runs/r1/result.json"))
    # 25 pairs with a report, 5 held out (seed 3 keeps the broken image in training): 20 in an epoch, 5 steps of 4, 2 epochs.
    assert result["steps"] == 10
    assert result["skippedReasons"] == {"invalid JSON": 1, "image failed to decode": 1}
    assert result["lineage"]["configSha256"] == json.loads(store.get_bytes("runs/r1/encoder/encoder.json"))["lineage"]["config_sha256"]
    for key in ("config.json", "train_log.jsonl", "tokenizer/vocab.txt", "encoder/image_encoder.onnx", "encoder/text_encoder.onnx",
                "encoder/tokenizer/vocab.txt", "encoder/encoder.json", "checkpoints/latest.json"):
        assert store.stat(f"runs/r1/{key}"), key
    # Only the last checkpoint is kept.
    assert [k for k in store.list("runs/r1/checkpoints/") if k.endswith(".safetensors")] == ["runs/r1/checkpoints/step-00000010.safetensors"]
    log = [json.loads(line) for line in store.get_bytes("runs/r1/train_log.jsonl").splitlines()]
    assert [e["step"] for e in log] == list(range(1, 11))
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["step"] for e in events if e["event"] == "progress"] == list(range(1, 11))
    assert events[-1]["event"] == "done"
    assert result["retrieval"]["pairs"] >= 4


def test_held_out_retrieval_pairs_are_scored_and_their_reports_left_out_of_training(store):
    # The same 24 reports with two image sets (as a pipeline's real and synthetic arms); 8 reports held out with the first set's images.
    lines = []
    for i in range(24):
        finding, report = FINDINGS[i % len(FINDINGS)]
        for folder, seed in (("first", i), ("second", 100 + i)):
            store.put(f"{folder}/{i:03d}.png", image(finding, seed))
        lines.append({"id": f"r{i}", "report": f"FINDINGS: {report}"})
    manifest = lambda name, rows, folder: store.put(name, "".join(json.dumps({**r, "image": f"{folder}/{int(r['id'][1:]):03d}.png"}) + "\n" for r in rows))
    manifest("first.jsonl", lines, "first")
    manifest("second.jsonl", lines, "second")
    held = manifest("held.jsonl", lines[:8], "first")
    for pairs in ("first.jsonl", "second.jsonl"):
        prefix = f"runs/held-{pairs[:-6]}"
        assert run(store, tiny_config(pairs, data={"real_pairs": [pairs], "retrieval_pairs": held["uri"]}), prefix) == 0
        result = json.loads(store.get_bytes(f"{prefix}/result.json"))
        # 16 training pairs (the 8 held-out reports left out by id): 4 steps of 4 a epoch, 2 epochs; the 8 held-out pairs scored.
        assert result["steps"] == 8
        assert result["retrieval"]["pairs"] == 8
        assert held["sha256"] in [i["sha256"] for i in result["lineage"]["inputs"]]
    with pytest.raises(ConfigError, match="manifest nowhere.jsonl not found") as error:
        run(store, tiny_config("first.jsonl", data={"retrieval_pairs": "nowhere.jsonl"}), "runs/held-missing")
    assert error.value.field == "data.retrieval_pairs"


def test_split_and_epoch_order_are_libs_vlps_for_the_same_seed(store, tmp_path):
    manifest = write_pairs(store, count=30, broken=False)
    records, _, _ = load_pair_manifests(store, [manifest["uri"]], [])
    train, validation = split_pairs(records, 0.2, 9)
    ours = {"validation": [r["index"] for r in validation], "epochs": [[r["index"] for r in epoch_order(train, 0.5, 9, e)] for e in (0, 1)]}
    assert ours == run_reference("pairs", store.root_uri, manifest["uri"], 0.2, 9)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_one_does(store):
    manifest = write_pairs(store)
    config = tiny_config(manifest["uri"], "gloria", data={"disable_augmentation": True})
    assert run(store, config, "runs/whole") == 0

    class Killed(Exception):
        pass

    original = trainer.save_checkpoint

    def save_then_die(*args):
        latest = original(*args)
        if latest["step"] == 6:
            raise Killed()
        return latest

    trainer.save_checkpoint = save_then_die
    try:
        with pytest.raises(Killed):
            run(store, config, "runs/killed")
    finally:
        trainer.save_checkpoint = original
    assert json.loads(store.get_bytes("runs/killed/checkpoints/latest.json"))["step"] == 6
    assert run(store, config, "runs/killed") == 0
    whole, resumed = (json.loads(store.get_bytes(f"runs/{p}/result.json")) for p in ("whole", "killed"))
    assert resumed["resumedFromStep"] == 6 and resumed["steps"] == 10
    # Same batches, same weights, same optimizer state from step 6 on: the same end.
    assert resumed["finalLoss"] == pytest.approx(whole["finalLoss"], rel=1e-5)
    logs = [[json.loads(line)["loss"] for line in store.get_bytes(f"runs/{p}/train_log.jsonl").splitlines()] for p in ("whole", "killed")]
    assert logs[1] == pytest.approx(logs[0], rel=1e-5)


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.update(batch_size=64), "batch_size"),
    (lambda c: c["text_encoder"].update(vocab="missing/vocab.txt"), "text_encoder.vocab"),
    (lambda c: c["text_encoder"].update(vocab_size=20), "text_encoder.vocab_size"),
    (lambda c: c["image_encoder"].update(init="data/pairs.jsonl"), "image_encoder.init"),
])
def test_inputs_that_cannot_train_fail_naming_the_field(store, mutate, field):
    manifest = write_pairs(store, broken=False)
    config = tiny_config(manifest["uri"])
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        run(store, config)
    assert caught.value.field == field


def test_the_command_line_takes_a_yaml_configuration_and_names_the_field_it_cannot_run(store, tmp_path, capsys):
    import yaml

    manifest = write_pairs(store, broken=False)
    config = tiny_config(manifest["uri"], epochs=1)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_status:
        trainer.main(["--config", str(tmp_path / "run.yaml"), "--prefix", "runs/cli"])
    assert exit_status.value.code == 0 and store.stat("runs/cli/result.json")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**config, "batch_size": 1}))
    with pytest.raises(SystemExit) as exit_status:
        trainer.main(["--config", str(tmp_path / "bad.yaml"), "--prefix", "runs/bad"])
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exit_status.value.code == 2
    assert (error["event"], error["code"], error["field"]) == ("error", "INVALID_ARGUMENT", "config.batch_size")
