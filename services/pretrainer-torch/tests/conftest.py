"""Shared pieces of the tests: one thread for torch (the machine is shared), the TypeScript
reference runner, a running service on loopback, and clients of its contracts."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
SERVICE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = SERVICE_ROOT.parent.parent
sys.path.insert(0, str(SERVICE_ROOT))

import grpc  # noqa: E402

from medsyn_pretrainer_torch import contracts, main  # noqa: E402


def run_reference(*args):
    """Runs tests/ts/reference.ts (libs/vlp & co. from their sources) and parses its JSON answer."""
    out = subprocess.run(
        ["node", "--conditions=medsyn-source", "--import", "tsx", str(SERVICE_ROOT / "tests" / "ts" / "reference.ts"), *map(str, args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        raise AssertionError(f"reference.ts {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def c():
    return contracts.load()


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def start_service(store_dir):
    """start_service(**env) -> a running service on free loopback ports over a file store; shut down after the test."""
    running = []

    def start(**env):
        base = {"MEDSYN_STORE": f"file://{store_dir}", "GRPC_PORT": "0", "METRICS_PORT": "0", "LOG_LEVEL": "warn", "SHUTDOWN_GRACE_SECONDS": "2"}
        service = main.start({**os.environ, **base, **env})
        running.append(service)
        return service

    yield start
    for service in running:
        service.shutdown()


class Clients:
    def __init__(self, c, target, token=None):
        self.channel = grpc.insecure_channel(target)
        self.metadata = [("authorization", f"Bearer {token}")] if token else None
        self.pretrainer = c.pretrainer_grpc.PretrainerServiceStub(self.channel)
        self.jobs = c.jobs_grpc.JobServiceStub(self.channel)
        self.health = c.health_grpc.HealthStub(self.channel)
        self.c = c

    def call(self, stub, method, request):
        return getattr(stub, method)(request, timeout=30, metadata=self.metadata)


@pytest.fixture
def clients(c):
    opened = []

    def connect(service, token=None):
        client = Clients(c, service.target, token)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.channel.close()


def rpc_error(call):
    """The grpc.RpcError a call ends with (fails the test when it succeeds)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def start_job(c, client, config, request_id="job-1"):
    """StartPretraining with a config given as the proto's JSON mapping; the job."""
    from google.protobuf import json_format

    request = json_format.ParseDict({"request_id": request_id, "config": config}, c.pretrainer.StartPretrainingRequest())
    return client.call(client.pretrainer, "StartPretraining", request).job


def watch_until(c, client, job_id, until, timeout=240):
    """WatchJob until `until(job)` holds (or the job ends, or timeout); the last job seen."""
    import time

    deadline = time.time() + timeout
    for update in client.jobs.WatchJob(c.jobs.WatchJobRequest(job_id=job_id), timeout=timeout, metadata=client.metadata):
        if until(update.job) or time.time() > deadline:
            return update.job
    return client.call(client.jobs, "GetJob", c.jobs.GetJobRequest(job_id=job_id)).job


@pytest.fixture
def s3rver(tmp_path):
    """A real S3-protocol server (s3rver, the repository's test peer) on a free loopback port."""
    bin_path = REPO_ROOT / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    process = subprocess.Popen(["node", str(bin_path), "-d", str(tmp_path / "s3"), "-a", "127.0.0.1", "-p", "0", "--configure-bucket", "medsyn"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            break
    else:
        raise AssertionError("s3rver did not start")
    yield f"http://127.0.0.1:{match.group(1)}"
    process.terminate()
    process.wait(10)
