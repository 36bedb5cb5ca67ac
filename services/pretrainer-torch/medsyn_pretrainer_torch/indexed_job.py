"""Runs a pre-training job as a Kubernetes Indexed Job across GPU nodes (PRETRAINER_LAUNCHER=kubernetes):
completion index i is torchrun's node rank i, the ranks meet at index 0 through the headless
Service the pods' subdomain names, and rank 0 writes checkpoints, `progress.json` and
`result.json` to the store, where this front reads them. The Job carries the job id as a label,
so a restarted service finds it again instead of starting a second one; CancelJob deletes it
(foreground propagation: the pods get SIGTERM, the ranks checkpoint and exit).

The pod's shape (image, GPU node affinity, tolerations, resources, volumes, the store's
credentials) comes from a Job manifest the operator edits (PRETRAINER_JOB_TEMPLATE,
deploy/k8s/overlays/gpu-torch/pretrain-ranks-job.yaml); this module sets what is per job: name,
labels, completions, the rendezvous, the spec and the GPUs per pod.
"""
import copy
import json

from .jobs import JobFailure

JOB_ID_LABEL = "medsyn.io/job-id"
MANAGED_BY = {"app.kubernetes.io/managed-by": "medsyn-pretrainer"}
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
RENDEZVOUS_PORT = 29500
# How often rank 0 publishes its last progress event to the store (train.py reads it).
PROGRESS_SECONDS = 10
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# torchrun on every node; /tmp is the template's writable emptyDir (the root filesystem is read-only).
RANKS_SCRIPT = (
    'printf %s "$PRETRAIN_SPEC" > /tmp/pretrain-spec.json && exec python -m medsyn_pretrainer_torch.torchrun'
    ' --nnodes="$NNODES" --nproc_per_node="$NPROC_PER_NODE" --node_rank="$JOB_COMPLETION_INDEX"'
    ' --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT"'
    " -m medsyn_pretrainer_torch.train --spec /tmp/pretrain-spec.json"
)


def ranks_job(template, job_id, spec, namespace, nodes, gpus_per_node, store_uri):
    """The Indexed Job of one pre-training job: the template with the per-job fields set."""
    job = copy.deepcopy(template)
    pod = job["spec"]["template"]
    subdomain = pod["spec"].get("subdomain")
    if not subdomain:
        raise ValueError("the Job template has no spec.template.spec.subdomain (the headless Service of the rendezvous)")
    labels = {**job["metadata"].get("labels", {}), **MANAGED_BY, JOB_ID_LABEL: job_id}
    job["metadata"] = {"name": job_id, "namespace": namespace, "labels": labels}
    job["spec"].update(completionMode="Indexed", completions=nodes, parallelism=nodes)
    pod.setdefault("metadata", {})["labels"] = {**pod["metadata"].get("labels", {}), JOB_ID_LABEL: job_id}
    container = pod["spec"]["containers"][0]
    container["command"] = ["sh", "-c", RANKS_SCRIPT]
    container.pop("args", None)
    per_job = {
        "NNODES": str(nodes), "NPROC_PER_NODE": str(gpus_per_node),
        # Indexed Job pods are named <job>-<index> in the subdomain's DNS zone.
        "MASTER_ADDR": f"{job_id}-0.{subdomain}", "MASTER_PORT": str(RENDEZVOUS_PORT),
        "PRETRAIN_SPEC": json.dumps(spec, separators=(",", ":")), "MEDSYN_STORE": store_uri,
        "PRETRAINER_PROGRESS_SECONDS": str(PROGRESS_SECONDS),
    }
    container["env"] = [e for e in container.get("env", []) if e["name"] not in per_job] + [{"name": k, "value": v} for k, v in per_job.items()]
    limits = container.setdefault("resources", {}).setdefault("limits", {})
    limits["nvidia.com/gpu"] = str(gpus_per_node)
    return job


def job_outcome(job, pods):
    """(state, phase, failure) of a Job and its pods: state is running, succeeded or failed."""
    conditions = {c["type"]: c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"}
    if "Complete" in conditions:
        return "succeeded", "done", None
    if "Failed" in conditions:
        return "failed", "failed", rank_failure(job, conditions["Failed"], pods)
    nodes = job["spec"]["completions"]
    running = sum(1 for p in pods if p.get("status", {}).get("phase") == "Running")
    phase = "training" if running == nodes else f"waiting for the node ranks ({running}/{nodes} pods running)"
    return "running", phase, None


def rank_failure(job, condition, pods):
    """The failure of a Job: the trainer's own error event when a rank printed one (its container's
    termination message holds the end of its log), else the Job's reason and the pods' exit codes."""
    exits = []
    for pod in sorted(pods, key=lambda p: int(p["metadata"].get("annotations", {}).get(COMPLETION_INDEX, "0"))):
        for status in pod.get("status", {}).get("containerStatuses", []):
            terminated = status.get("state", {}).get("terminated")
            if not terminated or terminated.get("exitCode", 0) == 0:
                continue
            for line in reversed((terminated.get("message") or "").splitlines()):
                event = _json_event(line)
                if event and event.get("event") == "error":
                    return JobFailure(event["message"], event.get("code", "INTERNAL"), event.get("field"))
            exits.append(f"{pod['metadata']['name']} exited {terminated['exitCode']}")
    detail = f" ({'; '.join(exits)})" if exits else ""
    return JobFailure(f"Job {job['metadata']['name']} failed: {condition.get('reason', '')} {condition.get('message', '')}".rstrip() + detail, "INTERNAL")


def _json_event(line):
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class IndexedJobLauncher:
    """The Kubernetes side of a job: find or create its Indexed Job, follow it, delete it on cancel."""

    def __init__(self, template, namespace, nodes, gpus_per_node, store_uri, env, watch_seconds=5.0):
        from kubernetes import client, config

        configuration = client.Configuration()
        if env.get("KUBECONFIG"):
            config.load_kube_config(config_file=env["KUBECONFIG"], client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)
        self.ApiException = client.exceptions.ApiException
        self.template, self.namespace, self.nodes, self.gpus = template, namespace, nodes, gpus_per_node
        self.store_uri, self.watch_seconds = store_uri, watch_seconds

    def find(self, job_id):
        """The Job of this job id (by label), or None."""
        found = self._json(self.batch.list_namespaced_job(self.namespace, label_selector=f"{JOB_ID_LABEL}={job_id}", _preload_content=False))
        return found["items"][0] if found["items"] else None

    def create(self, job_id, spec):
        body = ranks_job(self.template, job_id, spec, self.namespace, self.nodes, self.gpus, self.store_uri)
        try:
            return self._json(self.batch.create_namespaced_job(self.namespace, body, _preload_content=False))
        except self.ApiException as error:
            if error.status == 409:  # created meanwhile by another attempt: follow that one
                return self.find(job_id)
            raise

    def pods(self, job_id):
        return self._json(self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_ID_LABEL}={job_id}", _preload_content=False))["items"]

    def delete(self, name):
        try:
            self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Foreground", _preload_content=False)
        except self.ApiException as error:
            if error.status != 404:
                raise

    def run(self, ctx, read_progress):
        """Follows the job's Indexed Job (created unless one exists) until it ends or ctx.stop is set;
        read_progress() gives the progress rank 0 last published (None before its first)."""
        job = self.find(ctx.job_id)
        if job is None:
            ctx.report(phase="creating the node ranks' Job")
            job = self.create(ctx.job_id, ctx.spec)
        while True:
            if ctx.stop.is_set():
                if ctx.stop_reason == "cancelled":
                    self.delete(job["metadata"]["name"])
                # On a shutdown the Job keeps training; the next start finds it by its label.
                return None
            state, phase, failure = job_outcome(job, self.pods(ctx.job_id))
            progress = read_progress() or {}
            # While every rank trains, the trainer's phase (the epoch); before and after, the Job's.
            ctx.report(**{"phase": phase, **progress} if phase == "training" else {**progress, "phase": phase})
            if state == "failed":
                raise failure
            if state == "succeeded":
                return "succeeded"
            ctx.stop.wait(self.watch_seconds)
            if not ctx.stop.is_set():
                job = self.find(ctx.job_id)
                if job is None:
                    raise JobFailure(f"Job {ctx.job_id} was deleted outside this service", "ABORTED")

    @staticmethod
    def _json(response):
        return json.loads(response.data)


def namespace_of(env):
    """PRETRAINER_NAMESPACE, else the service's own namespace when it runs in a cluster."""
    if env.get("PRETRAINER_NAMESPACE"):
        return env["PRETRAINER_NAMESPACE"]
    try:
        with open(IN_CLUSTER_NAMESPACE) as f:
            return f.read().strip()
    except OSError:
        return "default"


def load_template(path):
    import yaml

    with open(path) as f:
        template = yaml.safe_load(f)
    if not isinstance(template, dict) or template.get("kind") != "Job" or not template.get("spec", {}).get("template", {}).get("spec", {}).get("containers"):
        raise ValueError(f"{path} is not a Job manifest with a pod template")
    return template
