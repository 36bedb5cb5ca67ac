"""Data-parallel training under torchrun with two CPU ranks (gloo): each rank trains on its shard of
every batch, the losses see the whole batch, and the run is the one-process run step for step;
after a kill of every rank, every rank resumes from rank 0's checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SERVICE_ROOT, start_job, watch_until
from medsyn_pretrainer_torch.config import parse_pretraining_config
from medsyn_pretrainer_torch.store import open_store
from pairs import proto_config, tiny_config, write_pairs

# A ViT has no BatchNorm, whose batch statistics are per rank on CPU (SyncBatchNorm needs GPUs):
# without it two ranks compute what one process computes, up to float summation order.
VIT = {"architecture": "vit_tiny", "image_size": 32, "width": 24}


def launch(tmp_path, store_uri, raw, prefix, ranks, **extra_env):
    spec = tmp_path / f"{prefix.replace('/', '_')}.json"
    spec.write_text(json.dumps({"config": parse_pretraining_config(raw), "prefix": prefix}))
    command = [sys.executable, "-m", "medsyn_pretrainer_torch.train", "--spec", str(spec), "--threads", "1"]
    if ranks > 1:
        command[1:3] = ["-m", "medsyn_pretrainer_torch.torchrun", "--standalone", f"--nproc_per_node={ranks}", "-m", "medsyn_pretrainer_torch.train"]
    env = {**os.environ, "MEDSYN_STORE": store_uri, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SERVICE_ROOT), **extra_env}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=SERVICE_ROOT)


def finish(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def losses(store, prefix):
    return [json.loads(line)["loss"] for line in store.get_bytes(f"{prefix}/train_log.jsonl").splitlines()]


@pytest.fixture
def corpus(tmp_path):
    uri = f"file://{tmp_path}/store"
    store = open_store(uri)
    manifest = write_pairs(store, count=24, broken=False)
    return uri, store, manifest["uri"]


def test_two_ranks_train_step_for_step_as_one_process(tmp_path, corpus):
    uri, store, manifest = corpus
    raw = tiny_config(manifest, "gloria", image_encoder=VIT, data={"disable_augmentation": True})
    one = launch(tmp_path, uri, raw, "runs/one", 1)
    # As an Indexed Job's ranks run (indexed_job.py): rank 0 also publishes its progress to the store.
    two = launch(tmp_path, uri, raw, "runs/two", 2, PRETRAINER_PROGRESS_SECONDS="10")
    finish(one)
    events = finish(two)
    assert any(e.get("phase") == "training (2 ranks)" for e in events)
    assert len([e for e in events if e["event"] == "progress"]) == 10  # rank 0 alone reports: 20 pairs, 5 steps, 2 epochs
    assert losses(store, "runs/two") == pytest.approx(losses(store, "runs/one"), rel=2e-4)
    result = json.loads(store.get_bytes("runs/two/result.json"))
    assert result["ranks"] == 2 and result["steps"] == 10
    published = json.loads(store.get_bytes("runs/two/progress.json"))
    assert published == {**[e for e in events if e["event"] == "progress"][-1], "batchSize": 4} and published["step"] == 10
    assert not store.stat("runs/one/progress.json")
    assert store.stat("runs/two/encoder/encoder.json")


def test_every_rank_resumes_from_rank_0s_checkpoint_after_a_kill(tmp_path, corpus):
    uri, store, manifest = corpus
    raw = tiny_config(manifest, "convirt", image_encoder=VIT, data={"disable_augmentation": True}, epochs=3, checkpoint_every_steps=1)
    whole = launch(tmp_path, uri, raw, "runs/whole", 1)
    killed = launch(tmp_path, uri, raw, "runs/killed", 2)
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = store.stat("runs/killed/checkpoints/latest.json") and json.loads(store.get_bytes("runs/killed/checkpoints/latest.json"))
        if latest and latest["step"] >= 3:
            break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # torchrun and both ranks, no chance to checkpoint
    killed.wait()
    at = json.loads(store.get_bytes("runs/killed/checkpoints/latest.json"))["step"]
    assert 3 <= at < 15
    finish(launch(tmp_path, uri, raw, "runs/killed", 2))
    finish(whole)
    result = json.loads(store.get_bytes("runs/killed/result.json"))
    assert result["resumedFromStep"] == at and result["steps"] == 15
    assert losses(store, "runs/killed") == pytest.approx(losses(store, "runs/whole"), rel=2e-4)


def test_the_service_runs_a_job_on_two_ranks(start_service, clients, c, store_dir):
    store = open_store(f"file://{store_dir}")
    manifest = write_pairs(store, broken=False)
    client = clients(start_service(PRETRAINER_NPROC_PER_NODE="2", PRETRAINER_THREADS="1"))
    job = start_job(c, client, proto_config(manifest["uri"], "convirt"), "ddp")
    done = watch_until(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED, timeout=300)
    assert c.job.JobState.Name(done.state) == "JOB_STATE_SUCCEEDED", done.error
    assert json.loads(store.get_bytes("pretrainer/ddp/result.json"))["ranks"] == 2
