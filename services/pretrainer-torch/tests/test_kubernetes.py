"""PRETRAINER_LAUNCHER=kubernetes against a fake API server (fake_kubernetes.py), with the overlay's
own Job template: a job becomes one Indexed Job of N pods x GPUs meeting at index 0, the Job's
and its pods' status (and the progress rank 0 publishes to the store, written here in its place)
drive the job, CancelJob deletes the Job, and a restarted service follows the Job it had
instead of creating a second one. No rank runs: the test plays the cluster and rank 0."""
import json
import time

import pytest

from conftest import REPO_ROOT, start_job as start, watch_until as wait
from fake_kubernetes import FakeKubernetes
from medsyn_pretrainer_torch.indexed_job import JOB_ID_LABEL
from medsyn_pretrainer_torch.kit import StartupError
from medsyn_pretrainer_torch.store import FileStore
from pairs import proto_config, write_pairs

TEMPLATE = REPO_ROOT / "deploy" / "k8s" / "overlays" / "gpu-torch" / "pretrain-ranks-job.yaml"


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKubernetes()
    yield fake
    fake.close()


@pytest.fixture
def start_launcher(start_service, cluster, tmp_path):
    """The service with the kubernetes launcher: 2 nodes x 4 GPUs per job, pointed at the fake cluster."""
    kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig")
    return lambda: start_service(PRETRAINER_LAUNCHER="kubernetes", KUBECONFIG=str(kubeconfig), PRETRAINER_NAMESPACE="medsyn",
                                 PRETRAINER_NNODES="2", PRETRAINER_NPROC_PER_NODE="4", PRETRAINER_JOB_TEMPLATE=str(TEMPLATE),
                                 PRETRAINER_WATCH_SECONDS="0.1")


def eventually(check, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def progress_event(step, total=20):
    """What rank 0 publishes as progress.json (train.py, PRETRAINER_PROGRESS_SECONDS)."""
    return {"event": "progress", "step": step, "totalSteps": total, "epoch": 1, "epochs": 2, "loss": 2.5, "parts": {"image_to_text": 1.2},
            "learningRate": 1e-3, "samplesPerSecond": 40.0, "stepSeconds": 0.1, "etaSeconds": 3.0, "dataWaitFraction": 0.1,
            "skippedRecords": 0, "batchSize": 4}


def finish_as_rank_0(store, prefix):
    ref = store.put(f"{prefix}/encoder/encoder.json", "{}")
    result = {"refs": {"encoderManifest": ref}, "finalLoss": 2.25}
    store.put(f"{prefix}/result.json", json.dumps(result))
    return ref


def state(c, job):
    return c.job.JobState.Name(job.state)


def test_a_job_becomes_an_indexed_job_whose_status_drives_the_job(start_launcher, cluster, clients, c, store_dir):
    store = FileStore(store_dir)
    manifest = write_pairs(store, count=8, broken=False)
    client = clients(start_launcher())
    job = start(c, client, proto_config(manifest["uri"], "convirt"))
    created = eventually(lambda: cluster.created)[0]

    # One Indexed Job: completion index = node rank, 2 pods x 4 GPUs, rendezvous at index 0 through the template's subdomain.
    assert created["metadata"]["name"] == job.job_id and created["metadata"]["namespace"] == "medsyn"
    assert created["metadata"]["labels"][JOB_ID_LABEL] == job.job_id
    assert created["spec"]["completionMode"] == "Indexed" and created["spec"]["completions"] == created["spec"]["parallelism"] == 2
    assert created["spec"]["backoffLimit"] == 0
    pod = created["spec"]["template"]
    assert pod["metadata"]["labels"][JOB_ID_LABEL] == job.job_id and pod["metadata"]["labels"]["app.kubernetes.io/name"] == "pretrain-ranks"
    assert pod["spec"]["subdomain"] == "pretrain-ranks"
    ranks = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in ranks["env"]}
    assert env["NNODES"] == "2" and env["NPROC_PER_NODE"] == "4" and ranks["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == (f"{job.job_id}-0.pretrain-ranks", "29500")
    assert env["MEDSYN_STORE"] == f"file://{store_dir}" and env["NCCL_SOCKET_IFNAME"] == "eth0"
    script = ranks["command"][-1]
    assert '--node_rank="$JOB_COMPLETION_INDEX"' in script and "-m medsyn_pretrainer_torch.train --spec" in script
    record = json.loads((store_dir / "jobs" / "pretrainer" / f"{job.job_id}.json").read_text())
    assert json.loads(env["PRETRAIN_SPEC"]) == record["spec"] and record["spec"]["prefix"] == "pretrainer/job-1"

    # Pods scheduling, then every rank training with rank 0's progress, then the Job complete.
    cluster.set_pods(job.job_id, ("Running", None), ("Pending", None))
    seen = wait(c, client, job.job_id, lambda j: j.progress.phase.startswith("waiting for the node ranks (1/2"), timeout=20)
    assert state(c, seen) == "JOB_STATE_RUNNING"
    cluster.set_pods(job.job_id, ("Running", None), ("Running", None))
    store.put("pretrainer/job-1/progress.json", json.dumps(progress_event(7)))
    seen = wait(c, client, job.job_id, lambda j: j.progress.completed == 7, timeout=20)
    assert (seen.progress.total, seen.progress.unit, seen.progress.phase) == (20, "steps", "epoch 1/2")
    assert seen.progress.metrics["loss"] == 2.5 and seen.progress.rate_per_second == 10.0
    ref = finish_as_rank_0(store, "pretrainer/job-1")
    cluster.set_status(job.job_id, succeeded=2, conditions=[{"type": "Complete", "status": "True"}])
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED, timeout=20)
    assert state(c, done) == "JOB_STATE_SUCCEEDED", done.error
    assert [o.uri for o in done.outputs] == [ref["uri"]] and done.progress.metrics["final_loss"] == 2.25
    assert len(cluster.created) == 1 and cluster.deleted == []


def test_a_failed_rank_fails_the_job_with_the_trainers_error(start_launcher, cluster, clients, c, store_dir):
    manifest = write_pairs(FileStore(store_dir), count=8, broken=False)
    client = clients(start_launcher())
    job = start(c, client, proto_config(manifest["uri"], "convirt"))
    eventually(lambda: cluster.created)
    # FallbackToLogsOnError: the end of rank 0's log is its container's termination message.
    error = {"event": "error", "code": "INVALID_ARGUMENT", "field": "config.batch_size", "message": "batch_size: must be a multiple of the 8 ranks"}
    cluster.set_pods(job.job_id, ("Failed", {"terminated": {"exitCode": 2, "message": f"loading\n{json.dumps(error)}\n"}}),
                     ("Failed", {"terminated": {"exitCode": 1, "message": "connection reset"}}))
    cluster.set_status(job.job_id, failed=2, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED, timeout=20)
    assert state(c, done) == "JOB_STATE_FAILED"
    assert (done.error.code, done.error.field) == ("INVALID_ARGUMENT", "config.batch_size") and "multiple of the 8 ranks" in done.error.message


def test_cancel_deletes_the_job_with_its_pods(start_launcher, cluster, clients, c, store_dir):
    manifest = write_pairs(FileStore(store_dir), count=8, broken=False)
    client = clients(start_launcher())
    job = start(c, client, proto_config(manifest["uri"], "convirt"))
    eventually(lambda: cluster.created)
    cancelled = client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id)).job
    assert state(c, cancelled) == "JOB_STATE_CANCELLED"
    assert cluster.deleted == [{"name": job.job_id, "propagationPolicy": "Foreground"}]


def test_a_restarted_service_follows_its_job_instead_of_creating_a_second(start_launcher, cluster, clients, c, store_dir):
    store = FileStore(store_dir)
    manifest = write_pairs(store, count=8, broken=False)
    first = start_launcher()
    job = start(c, clients(first), proto_config(manifest["uri"], "convirt"))
    eventually(lambda: cluster.created)
    first.shutdown()
    # A shutdown leaves the Job training.
    assert cluster.deleted == [] and list(cluster.jobs) == [job.job_id]

    client = clients(start_launcher())
    store.put("pretrainer/job-1/progress.json", json.dumps(progress_event(12)))
    seen = wait(c, client, job.job_id, lambda j: j.progress.completed == 12, timeout=20)
    assert state(c, seen) == "JOB_STATE_RUNNING"
    finish_as_rank_0(store, "pretrainer/job-1")
    cluster.set_status(job.job_id, conditions=[{"type": "Complete", "status": "True"}])
    done = wait(c, client, job.job_id, lambda j: j.state >= c.job.JOB_STATE_SUCCEEDED, timeout=20)
    assert state(c, done) == "JOB_STATE_SUCCEEDED"
    assert len(cluster.created) == 1


def test_the_kubernetes_launcher_needs_a_job_template_and_an_api(start_service, tmp_path):
    with pytest.raises(StartupError, match="PRETRAINER_JOB_TEMPLATE: required"):
        start_service(PRETRAINER_LAUNCHER="kubernetes")
    with pytest.raises(StartupError, match="PRETRAINER_LAUNCHER: cannot reach the Kubernetes API through KUBECONFIG"):
        start_service(PRETRAINER_LAUNCHER="kubernetes", PRETRAINER_JOB_TEMPLATE=str(TEMPLATE), KUBECONFIG=str(tmp_path / "missing"))
    with pytest.raises(StartupError, match="PRETRAINER_LAUNCHER: must be one of local, kubernetes"):
        start_service(PRETRAINER_LAUNCHER="slurm")


def test_each_node_rank_writes_the_spec_and_runs_torchrun_at_its_completion_index(tmp_path):
    """The ranks' command as a pod's shell runs it, with a stand-in `python` that shows what it was given."""
    import os
    import subprocess

    from medsyn_pretrainer_torch.indexed_job import load_template, ranks_job

    spec = {"config": {"method": "convirt"}, "prefix": "pretrainer/run-1"}
    job = ranks_job(load_template(TEMPLATE), "pretrain-abc", spec, "medsyn", 2, 4, "s3://medsyn")
    container = job["spec"]["template"]["spec"]["containers"][0]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text('#!/bin/sh\necho "$@"\ncat /tmp/pretrain-spec.json\n')
    (tmp_path / "bin" / "python").chmod(0o755)
    env = {**{e["name"]: e["value"] for e in container["env"]}, "JOB_COMPLETION_INDEX": "1", "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    out = subprocess.run(container["command"], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == ("-m medsyn_pretrainer_torch.torchrun --nnodes=2 --nproc_per_node=4 --node_rank=1 --master_addr=pretrain-abc-0.pretrain-ranks"
                      " --master_port=29500 -m medsyn_pretrainer_torch.train --spec /tmp/pretrain-spec.json")
    assert json.loads(out[1]) == spec
