"""The service's contract behaviour without training: validation naming fields, digests on input
references, job ids, health, reflection, bearer tokens and metric names."""
import hashlib
import json
import urllib.request

import grpc
import pytest

from conftest import rpc_error
from medsyn_pretrainer_torch.store import FileStore

MANIFEST = "data/pairs.jsonl"


def request(c, request_id="r1", **config):
    base = {"method": c.pretrainer.METHOD_CONVIRT, "batch_size": 4, "data": {"real_pairs": [{"uri": MANIFEST}]}}
    base.update(config)
    return c.pretrainer.StartPretrainingRequest(request_id=request_id, config=base)


@pytest.fixture
def service(start_service, store_dir):
    FileStore(store_dir).put(MANIFEST, '{"image": "a.png", "report": "No acute findings."}\n')
    return start_service()


@pytest.mark.parametrize("mutate, code, field", [
    (lambda r: r.ClearField("request_id"), "INVALID_ARGUMENT", "request_id"),
    (lambda r: r.ClearField("config"), "INVALID_ARGUMENT", "config"),
    (lambda r: setattr(r.config, "batch_size", 0), "INVALID_ARGUMENT", "config.batch_size"),
    (lambda r: setattr(r.config, "batch_size", 1_000_000), "INVALID_ARGUMENT", "config.batch_size"),
    (lambda r: setattr(r.config, "method", 0), "INVALID_ARGUMENT", "config.method"),
    (lambda r: setattr(r.config, "method", 42), "INVALID_ARGUMENT", "config.method"),
    (lambda r: setattr(r.config.image_encoder, "architecture", "vgg16"), "INVALID_ARGUMENT", "config.image_encoder.architecture"),
    (lambda r: setattr(r.config.image_encoder, "image_size", 1 << 20), "INVALID_ARGUMENT", "config.image_encoder.image_size"),
    (lambda r: setattr(r.config.text_encoder, "heads", 3), "INVALID_ARGUMENT", "config.text_encoder.hidden_size"),
    (lambda r: setattr(r.config.data, "validation_fraction", 0.9), "INVALID_ARGUMENT", "config.data.validation_fraction"),
    (lambda r: r.config.method_options.__setitem__("typo", 1), "INVALID_ARGUMENT", "config.method_options.typo"),
    (lambda r: setattr(r.config.data.real_pairs[0], "uri", "data/missing.jsonl"), "INVALID_ARGUMENT", "config.data.real_pairs[0]"),
    (lambda r: setattr(r.config.data.real_pairs[0], "uri", "file:///elsewhere/pairs.jsonl"), "INVALID_ARGUMENT", "config.data.real_pairs[0]"),
    (lambda r: setattr(r.config.data.real_pairs[0], "sha256", "abc"), "INVALID_ARGUMENT", "config.data.real_pairs[0].sha256"),
    (lambda r: setattr(r.config.data.real_pairs[0], "sha256", "0" * 64), "FAILED_PRECONDITION", "config.data.real_pairs[0]"),
    (lambda r: setattr(r.config.data.retrieval_pairs, "uri", "data/missing-held-out.jsonl"), "INVALID_ARGUMENT", "config.data.retrieval_pairs: manifest data/missing-held-out.jsonl not found"),
    (lambda r: r.config.text_encoder.vocab.MergeFrom(r.config.text_encoder.vocab.__class__(uri="v.txt", sha256="1" * 64)), "NOT_FOUND", "v.txt"),
    (lambda r: setattr(r, "output_prefix", "runs/../escape"), "INVALID_ARGUMENT", "output_prefix"),
    (lambda r: setattr(r, "output_prefix", "jobs/pretrainer/x"), "INVALID_ARGUMENT", "output_prefix"),
])
def test_a_bad_request_is_refused_naming_its_field_and_starts_no_job(service, clients, c, mutate, code, field):
    client = clients(service)
    bad = request(c)
    mutate(bad)
    error = rpc_error(lambda: client.call(client.pretrainer, "StartPretraining", bad))
    assert error.code().name == code
    assert field in error.details()
    assert not client.call(client.jobs, "ListJobs", c.jobs.ListJobsRequest()).jobs


def test_the_job_id_is_the_typescript_pretrainers_for_the_same_request_id(service, clients, c):
    client = clients(service)
    # Cancelled at once: this test is about the record, not the training.
    job = client.call(client.pretrainer, "StartPretraining", request(c, "same-id")).job
    client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id))
    digest = hashlib.sha256("pretrainer\0pretrain\0same-id".encode()).hexdigest()[:20]
    assert job.job_id == f"pretrain-{digest}"
    assert job.kind == "pretrain"
    again = client.call(client.pretrainer, "StartPretraining", request(c, "same-id")).job
    assert again.job_id == job.job_id
    error = rpc_error(lambda: client.call(client.pretrainer, "StartPretraining", request(c, "same-id", batch_size=8)))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "request_id" in error.details()


def test_an_output_prefix_owned_by_another_job_is_refused(service, clients, c):
    client = clients(service)
    first = request(c, "a")
    first.output_prefix = "runs/shared/"
    job = client.call(client.pretrainer, "StartPretraining", first).job
    client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id))
    second = request(c, "b", batch_size=8)
    second.output_prefix = "runs/shared/"
    error = rpc_error(lambda: client.call(client.pretrainer, "StartPretraining", second))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "output_prefix" in error.details()


def test_results_of_an_unfinished_or_unknown_job_are_refused(service, clients, c):
    client = clients(service)
    error = rpc_error(lambda: client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "job_id" in error.details()
    error = rpc_error(lambda: client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest(job_id="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "nope" in error.details()
    job = client.call(client.pretrainer, "StartPretraining", request(c)).job
    client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id))
    error = rpc_error(lambda: client.call(client.pretrainer, "GetPretrainingResult", c.pretrainer.GetPretrainingResultRequest(job_id=job.job_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "cancelled" in error.details()


def test_health_and_reflection_answer_for_the_contract(service, clients, c):
    client = clients(service)
    for name in ("", "medsyn.pretrainer.v1.PretrainerService", "medsyn.jobs.v1.JobService"):
        status = client.health.Check(c.health.HealthCheckRequest(service=name), timeout=5).status
        assert status == c.health.HealthCheckResponse.SERVING
    R = c.reflection
    stub = c.reflection_grpc.ServerReflectionStub(client.channel)
    listed, described = stub.ServerReflectionInfo(iter([
        R.ServerReflectionRequest(list_services=""),
        R.ServerReflectionRequest(file_containing_symbol="medsyn.pretrainer.v1.PretrainerService"),
    ]), timeout=5)
    names = [s.name for s in listed.list_services_response.service]
    assert {"grpc.health.v1.Health", "medsyn.jobs.v1.JobService", "medsyn.pretrainer.v1.PretrainerService"} <= set(names)
    # The contract's file and its imports (artifact, job, error, timestamp).
    assert len(described.file_descriptor_response.file_descriptor_proto) >= 4


def test_a_token_protects_everything_but_health_and_reflection(start_service, clients, c, store_dir):
    service = start_service(GRPC_AUTH_TOKEN="a-token-of-16-chars-at-least", GRPC_HOST="127.0.0.1", METRICS_HOST="127.0.0.1")
    anonymous = clients(service)
    error = rpc_error(lambda: anonymous.call(anonymous.jobs, "ListJobs", c.jobs.ListJobsRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert anonymous.health.Check(c.health.HealthCheckRequest(), timeout=5).status == c.health.HealthCheckResponse.SERVING
    allowed = clients(service, token="a-token-of-16-chars-at-least")
    assert len(allowed.call(allowed.jobs, "ListJobs", c.jobs.ListJobsRequest()).jobs) == 0


def test_metrics_carry_the_typescript_pretrainers_names(service, clients, c):
    client = clients(service)
    rpc_error(lambda: client.call(client.pretrainer, "StartPretraining", request(c, batch_size=1)))
    text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    assert 'medsyn_pretrainer_grpc_requests_total{code="INVALID_ARGUMENT",method="/medsyn.pretrainer.v1.PretrainerService/StartPretraining"} 1.0' in text
    for family in ("medsyn_pretrainer_grpc_request_duration_seconds", "medsyn_pretrainer_grpc_requests_in_flight", "medsyn_pretrainer_jobs",
                   "medsyn_pretrainer_training_steps_total", "medsyn_pretrainer_training_loss"):
        assert f"# TYPE {family}" in text or f"# TYPE {family.removesuffix('_total')}" in text, family
    assert "_created" not in text


def test_an_unprotected_wide_address_stops_the_service_naming_grpc_host(start_service):
    from medsyn_pretrainer_torch.kit import StartupError

    with pytest.raises(StartupError) as caught:
        start_service(GRPC_HOST="0.0.0.0")
    assert "GRPC_HOST" in str(caught.value)
    with pytest.raises(StartupError) as caught:
        start_service(GRPC_PORT="fifty", PRETRAINER_NPROC_PER_NODE="0")
    assert "GRPC_PORT" in str(caught.value) and "PRETRAINER_NPROC_PER_NODE" in str(caught.value)


def test_job_records_are_where_and_what_libs_jobs_writes(service, clients, c, store_dir):
    client = clients(service)
    job = client.call(client.pretrainer, "StartPretraining", request(c)).job
    client.call(client.jobs, "CancelJob", c.jobs.CancelJobRequest(job_id=job.job_id))
    record = json.loads(FileStore(store_dir).get_bytes(f"jobs/pretrainer/{job.job_id}.json"))
    assert record["state"] == "cancelled"
    assert set(record) >= {"jobId", "requestId", "requestDigest", "kind", "state", "progress", "createTime", "updateTime", "outputs", "spec", "outputPrefix"}
    assert record["outputPrefix"] == "pretrainer/r1/"
    assert record["spec"]["prefix"] == "pretrainer/r1"
    assert record["spec"]["config"]["batchSize"] == 4
