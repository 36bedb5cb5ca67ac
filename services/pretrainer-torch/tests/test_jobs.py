"""Through the contract, end to end: a pre-training job trains, reports progress, and leaves an
encoder bundle that libs/encoder-bundle reads unchanged and whose ONNX encoders (run by
onnxruntime, as the evaluator runs them) give the trained model's embeddings; a cancelled job
stops, and a job stopped by a shutdown resumes at the next start."""
import hashlib
import json

import grpc
import pytest
import torch

from conftest import run_reference, start_job as start, watch_until as wait
from medsyn_pretrainer_torch import checkpoint
from medsyn_pretrainer_torch.models import VlpModel
from medsyn_pretrainer_torch.store import FileStore, open_store
from pairs import proto_config, write_pairs

torch.set_num_threads(1)


@pytest.mark.parametrize("method, image", [("convirt", {}), ("mgca", {"architecture": "vit_tiny", "image_size": 32, "width": 24})])
def test_a_job_trains_and_leaves_a_bundle_the_evaluator_reads(start_service, clients, c, store_dir, tmp_path, method, image):
    store = FileStore(store_dir)
    manifest = write_pairs(store)
    service = start_service(PRETRAINER_THREADS="1")
    client = clients(service)
    job = start(c, client, proto_config(manifest["uri"], method, image_encoder=image))
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED)
    assert c.job.JobState.Name(done.state) == "JOB_STATE_SUCCEEDED", done.error
    assert (done.progress.completed, done.progress.total, done.progress.unit) == (10, 10, "steps")
    assert done.progress.phase == "done" and "final_loss" in done.progress.metrics and f"loss_{'instance' if method == 'mgca' else 'image_to_text'}" in done.progress.metrics
    result = client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest(job_id=job.job_id))
    assert result.bundle_prefix == "pretrainer/job-1/encoder"
    assert result.summary.steps == 10 and result.summary.skipped_records == 2
    assert result.lineage.inputs[0].sha256 == manifest["sha256"]
    assert {o.uri for o in done.outputs} >= {result.image_encoder.uri, result.encoder_manifest.uri, result.checkpoint.uri}

    # The evaluator's reader, unchanged, and its runtime: the exported encoders are the trained model.
    model = VlpModel(json.loads(store.get_bytes("pretrainer/job-1/config.json")), len(store.get_bytes("pretrainer/job-1/tokenizer/vocab.txt").splitlines()))
    tensors, _ = checkpoint.decode(store.get_bytes(store.key_of(result.checkpoint.uri)))
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer.")}, strict=False)
    model.eval()
    size = image.get("image_size", 32)
    inputs = {"pixel_values": torch.randn(2, 1, size, size), "input_ids": torch.tensor([[2, 7, 9, 3] + [0] * 12, [2, 11, 3] + [0] * 13]),
              "attention_mask": torch.tensor([[1] * 4 + [0] * 12, [1] * 3 + [0] * 13])}
    (tmp_path / "inputs.json").write_text(json.dumps({k: {"dims": list(v.shape), "data": v.flatten().tolist()} for k, v in inputs.items()}))
    seen = run_reference("read-bundle", f"file://{store_dir}", result.bundle_prefix, tmp_path / "inputs.json")
    assert seen["manifest"]["method"] == method and seen["manifest"]["image"]["architecture"] == ("vit" if image else "resnet18")
    with torch.no_grad():
        ours = model(**inputs)
    assert torch.allclose(torch.tensor(seen["image_embedding"]).view(2, -1), ours["image"], atol=1e-4)
    assert torch.allclose(torch.tensor(seen["text_embedding"]).view(2, -1), ours["text"], atol=1e-4)


def test_a_cancelled_job_stops_and_a_shutdown_one_resumes_at_the_next_start(start_service, clients, c, store_dir):
    store = FileStore(store_dir)
    manifest = write_pairs(store, count=60, broken=False)
    # Enough steps that the job is still running when it is stopped (epochs x 12 steps).
    config = proto_config(manifest["uri"], "convirt", epochs=30)
    service = start_service(PRETRAINER_THREADS="1")
    client = clients(service)
    cancelled = start(c, client, config, "to-cancel")
    wait(c, client, cancelled.job_id, lambda j: j.progress.completed >= 2)
    after = client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=cancelled.job_id)).job
    assert c.job.JobState.Name(after.state) == "JOB_STATE_CANCELLED"
    error = None
    try:
        client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest(job_id=cancelled.job_id))
    except grpc.RpcError as e:
        error = e
    assert error is not None and error.code() == grpc.StatusCode.FAILED_PRECONDITION

    job = start(c, client, {**config, "checkpoint_every_steps": 1}, "to-resume")
    reached = wait(c, client, job.job_id, lambda j: j.progress.completed >= 3).progress.completed
    service.shutdown()
    record = json.loads(store.get_bytes(f"jobs/pretrainer/{job.job_id}.json"))
    assert record["state"] == "running"  # unfinished: the next start resumes it
    stopped_at = json.loads(store.get_bytes("pretrainer/to-resume/checkpoints/latest.json"))["step"]
    assert stopped_at >= reached

    again = start_service(PRETRAINER_THREADS="1")
    client = clients(again)
    seen = []
    wait(c, client, job.job_id, lambda j: seen.append(j.progress.completed) or j.progress.completed > stopped_at, timeout=120)
    client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id))
    # It continues from the checkpoint: its first step after the restart is the next one, never step 1 again.
    assert min(seen) == stopped_at and seen[-1] == stopped_at + 1, seen


def test_a_job_trains_on_an_s3_store(start_service, clients, c, s3rver, monkeypatch):
    monkeypatch.setenv("MEDSYN_S3_ACCESS_KEY", "S3RVER")
    monkeypatch.setenv("MEDSYN_S3_SECRET_KEY", "S3RVER")
    uri = f"s3://medsyn/runs?endpoint={s3rver}"
    store = open_store(uri)
    manifest = write_pairs(store, broken=False)
    client = clients(start_service(MEDSYN_STORE=uri, PRETRAINER_THREADS="1", MEDSYN_S3_ACCESS_KEY="S3RVER", MEDSYN_S3_SECRET_KEY="S3RVER"))
    job = start(c, client, proto_config(manifest["uri"], "convirt", epochs=1))
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED)
    assert c.job.JobState.Name(done.state) == "JOB_STATE_SUCCEEDED", done.error
    result = client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest(job_id=job.job_id))
    assert result.encoder_manifest.uri == f"s3://medsyn/runs/{result.bundle_prefix}/encoder.json"
    # The sha256 recorded as the object's metadata is the bytes'.
    assert store.stat(store.key_of(result.checkpoint.uri))["sha256"] == hashlib.sha256(store.get_bytes(store.key_of(result.checkpoint.uri))).hexdigest()


def test_a_job_resumed_on_changed_inputs_fails_naming_the_field(start_service, clients, c, store_dir):
    store = FileStore(store_dir)
    manifest = write_pairs(store, count=60, broken=False)
    config = proto_config(manifest["uri"], "convirt", epochs=30)
    config["data"]["real_pairs"][0]["sha256"] = manifest["sha256"]
    service = start_service(PRETRAINER_THREADS="1")
    job = start(c, clients(service), config, "digest")
    wait(c, clients(service), job.job_id, lambda j: j.progress.completed >= 1)
    service.shutdown()
    # Rewritten while no service ran: the job's record still names the old bytes.
    store.put("data/pairs.jsonl", store.get_bytes("data/pairs.jsonl") + b'{"image": "images/000.png", "report": "Added later."}\n')
    client = clients(start_service(PRETRAINER_THREADS="1"))
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED, timeout=120)
    assert c.job.JobState.Name(done.state) == "JOB_STATE_FAILED"
    assert (done.error.code, done.error.field) == ("FAILED_PRECONDITION", "config.data.real_pairs[0]")
    assert f"sha256 mismatch for {manifest['uri']}" in done.error.message
