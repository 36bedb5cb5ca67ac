"""Jobs as libs/jobs keeps them, record for record: `jobs/<service>/<job id>.json` in the store
(the same camelCase fields), job ids from sha256(service \\0 kind \\0 request id), idempotent
starts, owned output prefixes (`jobs/owners/<sha256 of the prefix>.json`), at most
JOBS_MAX_RUNNING at once, and unfinished jobs resumed by their runner at load().
"""
import base64
import datetime
import hashlib
import json
import re
import threading
import time

from .config import canonical_digest

TERMINAL = {"succeeded", "failed", "cancelled"}
STATES = ["queued", "running", "succeeded", "failed", "cancelled"]
RESERVED_PREFIX = "jobs/"
MAX_PREFIX_LENGTH = 512


class JobError(Exception):
    """A job call that cannot be served; `code` is the gRPC status name."""

    def __init__(self, message, code, field=None):
        super().__init__(message)
        self.code = code
        self.field = field


def not_found(job_id):
    return JobError(f"job {json.dumps(job_id)} not found", "NOT_FOUND", "job_id")


class JobFailure(Exception):
    """Raised by a runner to fail its job with a code and the field at fault."""

    def __init__(self, message, code="INTERNAL", field=None):
        super().__init__(message)
        self.code = code
        self.field = field


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_progress():
    return {"completed": 0, "total": 0, "unit": "", "ratePerSecond": 0, "etaSeconds": 0, "phase": "", "metrics": {}, "failed": 0}


def validate_output_prefix(prefix):
    problem = (
        'must end with "/"' if not prefix.endswith("/")
        else 'must be relative to the store (no leading "/")' if prefix.startswith("/")
        else f"must be at most {MAX_PREFIX_LENGTH} characters" if len(prefix) > MAX_PREFIX_LENGTH
        else 'must not contain control characters or "\\"' if re.search(r"[\x00-\x1f\x7f\\]", prefix)
        else 'must not contain "..", "." or empty segments' if any(p in ("", ".", "..") for p in prefix[:-1].split("/"))
        else f'must not be under "{RESERVED_PREFIX}" (reserved for job records)' if prefix.startswith(RESERVED_PREFIX)
        else None
    )
    if problem:
        raise JobError(f"output_prefix {problem}", "INVALID_ARGUMENT", "output_prefix")


class JobContext:
    """What a running job sees: its spec, a stop event (with its reason) and ways to report."""

    def __init__(self, registry, live):
        self._registry, self._live = registry, live
        self.job_id = live["record"]["jobId"]
        self.spec = live["record"]["spec"]
        self.stop = live["stop"]

    @property
    def stop_reason(self):
        return self._live.get("reason")

    def report(self, **progress):
        record = self._live["record"]
        metrics = {**record["progress"]["metrics"], **progress.pop("metrics", {})}
        self._registry._update(self._live, progress={**record["progress"], **progress, "metrics": metrics})

    def add_output(self, ref):
        outputs = [o for o in self._live["record"]["outputs"] if o["uri"] != ref["uri"]] + [ref]
        self._registry._update(self._live, outputs=outputs)


class JobRegistry:
    def __init__(self, store, service, runners, max_running=2, persist_interval=1.0, on_event=None):
        self.store, self.service, self.runners = store, service, runners
        self.persist_interval, self.on_event = persist_interval, on_event or (lambda event: None)
        self.jobs = {}
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.slots = threading.Semaphore(max_running)
        self.closing = False

    def load(self):
        for key in self.store.list(f"jobs/{self.service}/"):
            if key.endswith(".json"):
                live = self._live(json.loads(self.store.get_bytes(key)))
                self.jobs[live["record"]["jobId"]] = live
                if live["record"]["state"] not in TERMINAL:
                    self._launch(live)

    def start(self, request_id, kind, spec, output_prefix=None):
        if not request_id:
            raise JobError("request_id is required (an idempotency key of your choice)", "INVALID_ARGUMENT", "request_id")
        if len(request_id) > 256:
            raise JobError("request_id is longer than 256 characters", "INVALID_ARGUMENT", "request_id")
        if kind not in self.runners:
            raise JobError(f"unknown job kind {json.dumps(kind)}", "INVALID_ARGUMENT", "kind")
        if self.closing:
            raise JobError("service is shutting down", "FAILED_PRECONDITION")
        if output_prefix is not None:
            validate_output_prefix(output_prefix)
        job_id = self.job_id_for(kind, request_id)
        digest = canonical_digest(spec)
        with self.lock:
            existing = self.jobs.get(job_id)
            if existing:
                if existing["record"]["requestDigest"] != digest:
                    raise JobError(f"request_id {json.dumps(request_id)} was already used with different parameters", "ALREADY_EXISTS", "request_id")
                return self._snapshot(existing)
            if output_prefix is not None:
                self._claim(output_prefix, job_id, digest)
            now = now_iso()
            record = {
                "jobId": job_id, "requestId": request_id, "requestDigest": digest, "kind": kind, "state": "queued",
                "progress": empty_progress(), "createTime": now, "updateTime": now, "outputs": [], "spec": spec,
            }
            if output_prefix is not None:
                record["outputPrefix"] = output_prefix
            live = self._live(record)
            self.jobs[job_id] = live
            self._persist(live)
        self._launch(live)
        return self._snapshot(live)

    def get(self, job_id):
        with self.lock:
            live = self.jobs.get(job_id)
            if not live:
                raise not_found(job_id)
            return self._snapshot(live)

    def list(self, page_size=50, page_token=""):
        size = min(max(page_size or 50, 1), 1000)
        offset = 0
        if page_token:
            try:
                decoded = base64.urlsafe_b64decode(page_token + "=" * (-len(page_token) % 4)).decode()
            except ValueError:
                decoded = ""
            match = re.fullmatch(r"offset:(\d+)", decoded)
            if not match:
                raise JobError("page_token is not one this service issued", "INVALID_ARGUMENT", "page_token")
            offset = int(match.group(1))
        with self.lock:
            records = sorted((j["record"] for j in self.jobs.values()), key=lambda r: r["jobId"])
            records.sort(key=lambda r: r["createTime"], reverse=True)
            page = [json.loads(json.dumps(r)) for r in records[offset:offset + size]]
            more = offset + size < len(records)
        token = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode().rstrip("=") if more else ""
        return page, token

    def counts(self):
        with self.lock:
            kinds = set(self.runners) | {j["record"]["kind"] for j in self.jobs.values()}
            tally = {}
            for j in self.jobs.values():
                key = (j["record"]["kind"], j["record"]["state"])
                tally[key] = tally.get(key, 0) + 1
        return [(kind, state, tally.get((kind, state), 0)) for kind in sorted(kinds) for state in STATES]

    def watch(self, job_id, is_active):
        """The job now, then after every change, until its terminal state or until is_active() is false."""
        with self.lock:
            live = self.jobs.get(job_id)
            if not live:
                raise not_found(job_id)
            version = live["version"]
            snapshot = self._snapshot(live)
        yield snapshot
        while snapshot["state"] not in TERMINAL:
            with self.lock:
                while live["version"] == version and is_active():
                    self.changed.wait(0.5)
                if not is_active():
                    return
                version = live["version"]
                snapshot = self._snapshot(live)
            yield snapshot

    def cancel(self, job_id):
        with self.lock:
            live = self.jobs.get(job_id)
            if not live:
                raise not_found(job_id)
            if live["record"]["state"] in TERMINAL:
                return self._snapshot(live)
            live["reason"] = "cancelled"
            live["stop"].set()
            thread = live.get("thread")
        if thread:
            thread.join()
        return self.get(job_id)

    def close(self):
        """Stops running jobs for shutdown: they stay unfinished in the store and resume at the next load()."""
        self.closing = True
        with self.lock:
            running = [j for j in self.jobs.values() if j.get("thread")]
            for live in running:
                live.setdefault("reason", "shutdown")
                live["stop"].set()
        for live in running:
            live["thread"].join()
        with self.lock:
            for live in self.jobs.values():
                self._persist(live)

    def job_id_for(self, kind, request_id):
        digest = hashlib.sha256(f"{self.service}\0{kind}\0{request_id}".encode()).hexdigest()[:20]
        return f"{kind.replace('_', '-')}-{digest}"

    def _claim(self, prefix, job_id, digest):
        key = f"{RESERVED_PREFIX}owners/{hashlib.sha256(prefix.encode()).hexdigest()}.json"
        if self.store.stat(key):
            claim = json.loads(self.store.get_bytes(key))
            if claim["jobId"] == job_id or claim["requestDigest"] == digest:
                return
            raise JobError(
                f"output_prefix {json.dumps(prefix)} belongs to job {claim['jobId']}, started with other parameters; choose another output_prefix",
                "FAILED_PRECONDITION", "output_prefix",
            )
        claim = {"prefix": prefix, "service": self.service, "jobId": job_id, "requestDigest": digest}
        self.store.put(key, json.dumps(claim, separators=(",", ":")), "application/json")

    def _live(self, record):
        return {"record": record, "stop": threading.Event(), "version": 0, "last_persist": 0.0, "timer": None}

    def _launch(self, live):
        runner = self.runners.get(live["record"]["kind"])
        if runner is None:
            self._finish(live, "failed", {"code": "UNAVAILABLE", "message": f"no runner for job kind {live['record']['kind']} in this version"})
            return
        live["stop"] = threading.Event()
        live.pop("reason", None)
        thread = threading.Thread(target=self._run, args=(live, runner), name=f"job-{live['record']['jobId']}", daemon=True)
        live["thread"] = thread
        thread.start()

    def _run(self, live, runner):
        try:
            if not self._acquire(live["stop"]):
                self._stopped(live)
                return
            try:
                self._update(live, state="running")
                try:
                    runner(JobContext(self, live))
                    if live["stop"].is_set():
                        self._stopped(live)
                    else:
                        self._finish(live, "succeeded")
                except Exception as error:  # noqa: BLE001 - every failure ends the job, never the service
                    if live["stop"].is_set() and not isinstance(error, JobFailure):
                        self._stopped(live)
                    else:
                        self._finish(live, "failed", _failure(error))
            finally:
                self.slots.release()
        finally:
            with self.lock:
                live["thread"] = None

    def _acquire(self, stop):
        while not stop.is_set():
            if self.slots.acquire(timeout=0.2):
                return True
        return False

    def _stopped(self, live):
        # On shutdown the job stays unfinished so that the next start resumes it.
        if live.get("reason") == "shutdown":
            with self.lock:
                self._persist(live)
        else:
            self._finish(live, "cancelled")

    def _finish(self, live, state, error=None):
        change = {"state": state, "endTime": now_iso()}
        if error:
            change["error"] = {k: v for k, v in error.items() if v is not None}
        with self.lock:
            self._update(live, persist=False, **change)
            self._persist(live)
        self.on_event({"jobId": live["record"]["jobId"], "kind": live["record"]["kind"], "state": state, **(error or {})})

    def _update(self, live, persist=True, **change):
        with self.lock:
            live["record"] = {**live["record"], **change, "updateTime": now_iso()}
            live["version"] += 1
            self.changed.notify_all()
            if not persist or live["timer"]:
                return
            wait = max(0.0, live["last_persist"] + self.persist_interval - time.monotonic())
            timer = threading.Timer(wait, self._persist_later, args=(live,))
            timer.daemon = True
            live["timer"] = timer
            timer.start()

    def _persist_later(self, live):
        with self.lock:
            live["timer"] = None
            self._persist(live)

    def _persist(self, live):
        live["last_persist"] = time.monotonic()
        record = live["record"]
        try:
            self.store.put(f"jobs/{self.service}/{record['jobId']}.json", json.dumps(record, separators=(",", ":")), "application/json")
        except Exception as error:  # noqa: BLE001 - a store hiccup must not end the job
            self.on_event({"jobId": record["jobId"], "kind": record["kind"], "state": record["state"], "code": "PERSIST_FAILED", "message": str(error)})

    def _snapshot(self, live):
        return json.loads(json.dumps(live["record"]))


def _failure(error):
    if isinstance(error, JobFailure):
        return {"code": error.code, "message": str(error), "field": error.field}
    # Unexpected errors may carry data in their message: report the type only.
    return {"code": "INTERNAL", "message": f"job failed with an internal error ({type(error).__name__})"}
