"""medsyn.pretrainer.v1.PretrainerService: the handlers translate protobuf to the configuration and
back, and map errors to statuses, as services/pretrainer/src/service.ts does; a job runs the
trainer (medsyn_pretrainer_torch.train) as a child process, under torchrun when it has more than
one rank, and follows it through the JSON events rank 0 prints.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading

import grpc
from prometheus_client import Counter, Gauge, Histogram

from . import contracts, indexed_job
from .config import ConfigError, check_runnable, parse_pretraining_config
from .jobs import JobFailure
from .kit import RpcError, StartupError, invalid_argument, to_proto_job, to_proto_ref
from .store import ArtifactNotFound, DigestMismatch, InvalidKey, key_of, verify_artifact_ref

SERVICE = "pretrainer"
DEFAULTS = {"grpc_port": 50053, "metrics_port": 9463}
PRETRAIN_JOB = "pretrain"
RESULT_FILE = "result.json"
# What rank 0 publishes under PRETRAINER_PROGRESS_SECONDS (train.py RUN_FILES["progress"]).
PROGRESS_FILE = "progress.json"


def _count(low):
    def parse(text):
        if not text.isdigit() or not low <= int(text) <= 1024:
            raise ValueError(f"must be an integer from {low} to 1024")
        return int(text)

    return parse


def _one_of(*allowed):
    def parse(text):
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0.05 <= value <= 3600:
        raise ValueError("must be a number of seconds from 0.05 to 3600")
    return value


# This implementation's own variables (docs/pretrainer-torch.md).
EXTRA_CONFIG = {
    # Ranks (processes) per job on this node: 1 runs the trainer alone, more run it under torchrun.
    "PRETRAINER_NPROC_PER_NODE": (1, _count(1)),
    # Intra-op threads per rank (torch.set_num_threads); 0: torch's default.
    "PRETRAINER_THREADS": (0, _count(0)),
    # Where a job's ranks run: child processes of this service, or an Indexed Job on a cluster (indexed_job.py).
    "PRETRAINER_LAUNCHER": ("local", _one_of("local", "kubernetes")),
    # With the kubernetes launcher: nodes (pods) per job, each with PRETRAINER_NPROC_PER_NODE GPUs and ranks.
    "PRETRAINER_NNODES": (1, _count(1)),
    # With the kubernetes launcher: the Job manifest whose pod shape the node ranks take.
    "PRETRAINER_JOB_TEMPLATE": (None, str),
    # With the kubernetes launcher: the namespace of the Jobs (default: the service's own in a cluster).
    "PRETRAINER_NAMESPACE": (None, str),
    # With the kubernetes launcher: seconds between two looks at a Job, its pods and the progress rank 0 published.
    "PRETRAINER_WATCH_SECONDS": (5.0, _seconds),
}


def plain(message):
    """A protobuf message as the mapping parse_pretraining_config reads: proto3 leaves unset fields at
    0 / "" / false, which mean "the default", so only set fields are kept."""
    out = {}
    for field, value in message.ListFields():
        if field.message_type and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.message_type:
            out[field.name] = [plain(v) for v in value] if field.label == field.LABEL_REPEATED else plain(value)
        else:
            out[field.name] = list(value) if field.label == field.LABEL_REPEATED else value
    return out


def input_refs(config):
    """The artifacts a request names, by field: pair manifests (which must exist), initial weights and a vocabulary."""
    refs = [(f"config.data.real_pairs[{i}]", r, True) for i, r in enumerate(config.data.real_pairs)]
    refs += [(f"config.data.synthetic_pairs[{i}]", r, True) for i, r in enumerate(config.data.synthetic_pairs)]
    if config.data.retrieval_pairs.uri:
        refs.append(("config.data.retrieval_pairs", config.data.retrieval_pairs, True))
    for field, ref in (("config.image_encoder.init", config.image_encoder.init), ("config.text_encoder.init", config.text_encoder.init),
                       ("config.text_encoder.vocab", config.text_encoder.vocab)):
        if ref.uri:
            refs.append((field, ref, False))
    return refs


def start_spec(store, request):
    """Validates a StartPretraining request into the job's spec; INVALID_ARGUMENT naming the field otherwise."""
    if not request.HasField("config"):
        raise invalid_argument("config", "is required")
    fields = plain(request.config)
    # batch_size 0 is an error, not "the default".
    fields["batch_size"] = request.config.batch_size
    try:
        config = parse_pretraining_config(fields)
        check_runnable(config)
    except ConfigError as error:
        raise invalid_argument(f"config.{error.field}", error.problem) from None
    # Missing manifests, and inputs that are not the bytes their sha256 names, fail the call, not a job minutes later.
    inputs = []
    for field, ref, manifest in input_refs(request.config):
        if not manifest and not ref.sha256:
            continue
        try:
            key = key_of(store, ref.uri)
            found = store.stat(key) is not None
        except InvalidKey:
            raise invalid_argument(field, f"{ref.uri} is not in the artifact store ({store.root_uri})") from None
        if manifest and not found:
            raise invalid_argument(field, f"manifest {ref.uri} not found")
        verify_artifact_ref(store, ref.uri, ref.sha256, field, key)
        if ref.sha256:
            inputs.append({"field": field, "uri": ref.uri, "sha256": ref.sha256, "key": key})
    prefix = (request.output_prefix or f"pretrainer/{request.request_id}").rstrip("/")
    if any(part in ("..", "") for part in prefix.split("/")):
        raise invalid_argument("output_prefix", 'must be a relative store prefix without ".." or empty segments')
    # The inputs named with a sha256 are checked again when the job runs (libs/jobs' JobInput); absent when none was.
    return {"config": config, "prefix": prefix, **({"inputs": inputs} if inputs else {})}


def verify_job_inputs(store, inputs):
    """A job that waited in the queue, or resumes after a restart, fails on inputs changed since it was accepted."""
    for i in inputs:
        try:
            verify_artifact_ref(store, i["uri"], i["sha256"], i["field"], i["key"])
        except DigestMismatch as error:
            raise JobFailure(str(error), "FAILED_PRECONDITION", i["field"]) from None
        except ArtifactNotFound:
            raise JobFailure(f"{i['field']}: {i['uri']} is no longer there", "NOT_FOUND", i["field"]) from None


class TrainingMetrics:
    """The training series of the TypeScript pretrainer, under the same names."""

    def __init__(self, metrics):
        p, r, labels = metrics.prefix, metrics.registry, ["method"]
        self.steps = Counter(f"{p}training_steps", "Optimizer steps done.", labels, registry=r)
        self.step_seconds = Histogram(f"{p}training_step_seconds", "Compute time of one training step.", labels,
                                      buckets=[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registry=r)
        self.samples_per_second = Gauge(f"{p}training_samples_per_second", "Training throughput of the running job.", labels, registry=r)
        self.loss = Gauge(f"{p}training_loss", "Loss of the last step.", labels, registry=r)
        self.data_wait = Gauge(f"{p}training_data_wait_ratio", "Share of wall time the trainer waited for data.", labels, registry=r)

    def record(self, method, p):
        self.steps.labels(method).inc()
        self.step_seconds.labels(method).observe(p["stepSeconds"])
        self.samples_per_second.labels(method).set(p["samplesPerSecond"])
        self.loss.labels(method).set(p["loss"])
        self.data_wait.labels(method).set(p["dataWaitFraction"])


def trainer_command(spec_file, nproc):
    """The trainer, alone or under torchrun (gloo on CPU, NCCL on GPUs) with nproc ranks on this node."""
    module = ["-m", "medsyn_pretrainer_torch.train", "--spec", spec_file]
    if nproc == 1:
        return [sys.executable, *module]
    return [sys.executable, "-m", "medsyn_pretrainer_torch.torchrun", "--standalone", f"--nproc_per_node={nproc}", *module]


def pretrain_runner(context, training_metrics):
    """The job: its inputs checked again, the ranks launched (here, or as an Indexed Job on a cluster), the result's outputs recorded."""
    launch = kubernetes_launch(context) if context.config["service"]["PRETRAINER_LAUNCHER"] == "kubernetes" \
        else local_launch(context, training_metrics)

    def run(ctx):
        spec = ctx.spec
        verify_job_inputs(context.store, spec.get("inputs", []))
        ctx.report(phase="preparing data", unit="steps")
        if not launch(ctx):
            # Cancel or shutdown: the registry records it; the trainer checkpointed the step it stopped at
            # (exit STOPPED_EXIT), or a later start resumes from its last periodic checkpoint.
            return
        result = json.loads(context.store.get_bytes(f"{spec['prefix']}/{RESULT_FILE}"))
        for ref in result["refs"].values():
            ctx.add_output(ref)
        done = {"final_loss": result["finalLoss"]}
        if result.get("retrieval"):
            done["retrieval_top1"] = result["retrieval"]["top1"]
        ctx.report(phase="done", metrics=done)

    return run


def local_launch(context, training_metrics):
    """The trainer as a child process (under torchrun with PRETRAINER_NPROC_PER_NODE ranks), followed
    through rank 0's JSON events; True when it trained to the end, False when stopped."""
    service_config = context.config["service"]

    def launch(ctx):
        spec = ctx.spec
        config = spec["config"]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
            spec_file = f.name
        env = {**context.env, "MEDSYN_STORE": context.store.root_uri if context.config["store_uri"].startswith("file://") else context.config["store_uri"],
               "PYTHONPATH": os.pathsep.join(filter(None, [str(contracts.SERVICE_ROOT), context.env.get("PYTHONPATH")]))}
        if service_config["PRETRAINER_THREADS"]:
            env["OMP_NUM_THREADS"] = str(service_config["PRETRAINER_THREADS"])
        process = subprocess.Popen(trainer_command(spec_file, service_config["PRETRAINER_NPROC_PER_NODE"]), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        stderr_tail = []
        threading.Thread(target=_tail, args=(process.stderr, stderr_tail), daemon=True).start()
        watcher = threading.Thread(target=_stop_on_signal, args=(ctx, process), daemon=True)
        watcher.start()
        failure = None
        try:
            for line in process.stdout:
                event = _event(line)
                if event is None:
                    continue
                if event["event"] == "progress":
                    training_metrics.record(config["method"], event)
                    ctx.report(**progress_fields(event, config["batchSize"]))
                elif event["event"] == "phase":
                    ctx.report(phase=event["phase"])
                elif event["event"] == "error":
                    failure = JobFailure(event["message"], event.get("code", "INTERNAL"), event.get("field"))
            code = process.wait()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            os.unlink(spec_file)
        if ctx.stop.is_set():
            return False
        if failure:
            raise failure
        if code != 0:
            context.logger.warn("trainer failed", jobId=ctx.job_id, exitCode=code, stderr=" | ".join(stderr_tail[-5:]))
            raise JobFailure(f"the training process exited with status {code}", "INTERNAL")
        return True

    return launch


def kubernetes_launch(context):
    """The job's node ranks as an Indexed Job (indexed_job.py), found again by label after a restart;
    True when the Job completed, False when stopped (a cancel deletes the Job, a shutdown leaves it)."""
    service_config = context.config["service"]
    if not service_config["PRETRAINER_JOB_TEMPLATE"]:
        raise StartupError(["PRETRAINER_JOB_TEMPLATE: required with PRETRAINER_LAUNCHER=kubernetes (the Job manifest of the node ranks)"])
    try:
        template = indexed_job.load_template(service_config["PRETRAINER_JOB_TEMPLATE"])
    except (OSError, ValueError) as error:
        raise StartupError([f"PRETRAINER_JOB_TEMPLATE: {error}"]) from None
    try:
        launcher = indexed_job.IndexedJobLauncher(
            template, indexed_job.namespace_of(context.env), service_config["PRETRAINER_NNODES"], service_config["PRETRAINER_NPROC_PER_NODE"],
            # The ranks open the store the service has (a file:// store must be a volume both mount at the same path).
            context.store.root_uri if context.config["store_uri"].startswith("file://") else context.config["store_uri"],
            context.env, service_config["PRETRAINER_WATCH_SECONDS"])
    except Exception as error:  # noqa: BLE001 - kubernetes.config.ConfigException and file errors alike
        where = f"KUBECONFIG {context.env['KUBECONFIG']}" if context.env.get("KUBECONFIG") else "the in-cluster service account"
        raise StartupError([f"PRETRAINER_LAUNCHER: cannot reach the Kubernetes API through {where} ({error})"]) from None

    def launch(ctx):
        progress_key = f"{ctx.spec['prefix']}/{PROGRESS_FILE}"

        def read_progress():
            if not context.store.stat(progress_key):
                return None
            event = json.loads(context.store.get_bytes(progress_key))
            return progress_fields(event, ctx.spec["config"]["batchSize"])

        return launcher.run(ctx, read_progress) == "succeeded"

    return launch


def _tail(stream, lines):
    for line in stream:
        lines.append(line.rstrip()[:500])
        del lines[:-20]


def _stop_on_signal(ctx, process):
    """Cancel or shutdown: SIGTERM to the trainer's process group (torchrun and its ranks); the ranks stop at one step and rank 0 checkpoints it."""
    while process.poll() is None:
        if ctx.stop.wait(0.2):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            return


def _event(line):
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def progress_fields(p, batch_size):
    """A progress event of rank 0 as the job's progress."""
    return {
        "completed": p["step"], "total": p["totalSteps"], "unit": "steps",
        "ratePerSecond": p["samplesPerSecond"] / batch_size, "etaSeconds": p["etaSeconds"],
        "phase": f"epoch {p['epoch']}/{p['epochs']}", "failed": p["skippedRecords"],
        "metrics": {
            "loss": p["loss"], **{f"loss_{k}": v for k, v in p["parts"].items()}, "learning_rate": p["learningRate"],
            "samples_per_second": p["samplesPerSecond"], "step_seconds": p["stepSeconds"],
            "data_wait_fraction": p["dataWaitFraction"], "epoch": p["epoch"],
        },
    }


def result_response(c, store, jobs, job_id):
    if not job_id:
        raise invalid_argument("job_id", "is required")
    job = jobs.get(job_id)
    if job["kind"] != PRETRAIN_JOB:
        raise invalid_argument("job_id", f"{job_id} is not a pre-training job")
    if job["state"] != "succeeded":
        raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"job {job_id} is {job['state']}; results exist once it succeeded", "job_id")
    try:
        run = json.loads(store.get_bytes(f"{job['spec']['prefix']}/{RESULT_FILE}"))
    except ArtifactNotFound:
        raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"job {job_id} succeeded but its {RESULT_FILE} is gone from the store", "job_id") from None
    refs, retrieval = run["refs"], run.get("retrieval") or {}
    P = c.pretrainer
    return P.GetPretrainingResultResponse(
        image_encoder=to_proto_ref(c, refs["imageEncoder"]), text_encoder=to_proto_ref(c, refs["textEncoder"]),
        tokenizer=to_proto_ref(c, refs["tokenizer"]), config=to_proto_ref(c, refs["config"]),
        training_log=to_proto_ref(c, refs["trainingLog"]), checkpoint=to_proto_ref(c, refs["checkpoint"]),
        lineage=c.artifact.Lineage(
            inputs=[c.artifact.ArtifactRef(uri=i["uri"], sha256=i["sha256"], media_type="application/x-ndjson") for i in run["lineage"]["inputs"]],
            config_sha256=run["lineage"]["configSha256"], code_version=run["lineage"]["codeVersion"]),
        encoder_manifest=to_proto_ref(c, refs["encoderManifest"]), bundle_prefix=run["bundlePrefix"],
        summary=P.PretrainingSummary(
            steps=run["steps"], final_loss=run["finalLoss"], retrieval_top1=retrieval.get("top1", 0), retrieval_chance=retrieval.get("chance", 0),
            validation_pairs=retrieval.get("pairs", 0), skipped_records=run["skippedRecords"], samples_per_second=run["samplesPerSecond"],
            data_wait_fraction=run["dataWaitFraction"]),
    )


def register(context):
    c = contracts.load()
    training_metrics = TrainingMetrics(context.metrics)
    context.jobs.runners[PRETRAIN_JOB] = pretrain_runner(context, training_metrics)

    def start_pretraining(request, grpc_context):
        if not request.request_id:
            raise invalid_argument("request_id", "is required (an idempotency key of your choice)")
        spec = start_spec(context.store, request)
        job = context.jobs.start(request.request_id, PRETRAIN_JOB, spec, output_prefix=spec["prefix"] + "/")
        return c.pretrainer.StartPretrainingResponse(job=to_proto_job(c, job))

    def get_pretraining_result(request, grpc_context):
        return result_response(c, context.store, context.jobs, request.job_id)

    context.add_service(c.pretrainer.DESCRIPTOR, "PretrainerService",
                        {"StartPretraining": start_pretraining, "GetPretrainingResult": get_pretraining_result})
