"""A Kubernetes API server on loopback with just the batch/v1 Jobs and v1 Pods the launcher calls:
it keeps the Jobs it is sent, answers label-selector lists, records deletes (with their
propagation policy), and lets a test set a Job's status and its pods as the Job controller and
the kubelet would. Plain HTTP; `kubeconfig()` writes the file the client is pointed at."""
import http.server
import json
import re
import threading
import uuid
from urllib.parse import parse_qs, urlparse

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")


class FakeKubernetes:
    def __init__(self):
        self.jobs, self.pods, self.created, self.deleted = {}, {}, [], []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake._serve(self, "GET")

            def do_POST(self):
                fake._serve(self, "POST")

            def do_DELETE(self):
                fake._serve(self, "DELETE")

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path, namespace="medsyn"):
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    def set_status(self, name, **status):
        with self.lock:
            self.jobs[name]["status"] = status

    def set_pods(self, job, *pods):
        """Pods of a Job as (phase, container state) pairs, index i for the i-th."""
        with self.lock:
            labels = self.jobs[job]["spec"]["template"]["metadata"]["labels"]
            namespace = self.jobs[job]["metadata"]["namespace"]
            self.pods[job] = [{
                "metadata": {"name": f"{job}-{i}-abcde", "namespace": namespace, "labels": labels,
                             "annotations": {"batch.kubernetes.io/job-completion-index": str(i)}},
                "status": {"phase": phase, "containerStatuses": [{"name": "ranks", "state": state or {}}]},
            } for i, (phase, state) in enumerate(pods)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, request, method):
        url = urlparse(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = json.loads(request.rfile.read(int(request.headers.get("Content-Length") or 0)) or b"null")
        with self.lock:
            jobs, pods = JOBS.match(url.path), PODS.match(url.path)
            if jobs and method == "POST":
                answer = self._create(jobs.group(1), body)
            elif jobs and method == "GET" and not jobs.group(2):
                answer = 200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {},
                               "items": [j for j in self.jobs.values() if _selected(j, jobs.group(1), query)]}
            elif jobs and method == "DELETE" and jobs.group(2) in self.jobs:
                self.deleted.append({"name": jobs.group(2), "propagationPolicy": query.get("propagationPolicy") or (body or {}).get("propagationPolicy")})
                del self.jobs[jobs.group(2)]
                answer = 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            elif pods and method == "GET":
                items = [p for job in self.pods.values() for p in job if _selected(p, pods.group(1), query)]
                answer = 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
            else:
                answer = 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
        code, payload = answer
        data = json.dumps(payload).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _create(self, namespace, job):
        name = job["metadata"]["name"]
        if name in self.jobs:
            return 409, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409}
        job = json.loads(json.dumps(job))
        job["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
        job["status"] = {}
        self.jobs[name] = job
        self.created.append(job)
        return 201, job


def _selected(obj, namespace, query):
    """An object of the namespace matching a labelSelector of k=v terms (the only form the launcher sends)."""
    labels = obj["metadata"].get("labels", {})
    terms = [t.split("=", 1) for t in query.get("labelSelector", "").split(",") if t]
    return obj["metadata"]["namespace"] == namespace and all(labels.get(k) == v for k, v in terms)
