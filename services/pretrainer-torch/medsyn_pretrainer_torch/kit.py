"""What libs/service-kit gives a TypeScript service, for this Python one: configuration from the
environment (docs/configuration.md, every problem named at once), JSON logs, the gRPC server
with health, reflection, TLS / mutual TLS and bearer tokens, handler errors mapped to statuses
(never a crash), Prometheus metrics under the same names on their own port, GPU sampling, the
job registry, and a graceful shutdown on SIGTERM.
"""
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

# No *_created series: the metric families are exactly the TypeScript services' (prom-client has none).
os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import contracts
from .config import ConfigError
from .jobs import JobError, JobRegistry
from .store import ArtifactNotFound, DigestMismatch, InvalidKey, MalformedDigest, StoreError, open_store

LEVELS = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60, "silent": 100}
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SECRET_VARIABLES = {"GRPC_AUTH_TOKEN"}


class StartupError(Exception):
    """A configuration that cannot start; one line per bad variable."""

    def __init__(self, problems):
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class RpcError(Exception):
    """A status with a message naming the field at fault."""

    def __init__(self, code, message, field=None):
        super().__init__(message)
        self.code, self.field = code, field


def invalid_argument(field, problem):
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}", field)


class Logger:
    """One JSON object per line on stdout, pino's shape; ids, counts and codes only, never payloads."""

    def __init__(self, service, level="info"):
        self.service, self.threshold = service, LEVELS[level]
        self.lock = threading.Lock()

    def log(self, level, msg, **fields):
        if LEVELS[level] < self.threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        line = json.dumps({"level": LEVELS[level], "time": stamp, "pid": os.getpid(), "service": self.service, **fields, "msg": msg}, separators=(",", ":"))
        with self.lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def __getattr__(self, level):
        if level not in LEVELS:
            raise AttributeError(level)
        return lambda msg, **fields: self.log(level, msg, **fields)


def is_loopback(host):
    return host in ("localhost", "::1", "[::1]") or bool(re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}", host))


def load_config(env, defaults, extra=None):
    """The kit's variables (and a service's own `extra` parsers: name -> (default, parse)); StartupError naming each bad one."""
    problems, v = [], {k: val for k, val in env.items() if val not in (None, "")}

    def shown(name):
        return " (value hidden)" if name in SECRET_VARIABLES else f" (got {json.dumps(v[name][:200])})"

    def number(name, default, lo, hi, integer=True, message=None):
        if name not in v:
            return default
        try:
            value = float(v[name])
        except ValueError:
            problems.append(f"{name}: {message or 'must be a number'}{shown(name)}")
            return default
        if integer and not value.is_integer():
            problems.append(f"{name}: must be an integer{shown(name)}")
        elif not lo <= value <= hi:
            problems.append(f"{name}: {message or f'must be from {lo} to {hi}'}{shown(name)}")
        return int(value) if integer else value

    def choice(name, default, allowed):
        if name in v and v[name] not in allowed:
            problems.append(f"{name}: must be one of {', '.join(allowed)}{shown(name)}")
        return v.get(name, default)

    def read(name):
        if name not in v:
            return None
        try:
            with open(v[name], "rb") as f:
                return f.read()
        except OSError as error:
            problems.append(f"{name}: cannot read {v[name]} ({error.strerror})")
            return None

    port_message = "must be a port number from 0 to 65535"
    c = {
        "grpc_port": number("GRPC_PORT", defaults["grpc_port"], 0, 65535, message=port_message),
        "metrics_port": number("METRICS_PORT", defaults["metrics_port"], 0, 65535, message=port_message),
        "insecure_listen": choice("GRPC_INSECURE_LISTEN", "false", ("true", "false")) == "true",
        "store_uri": v.get("MEDSYN_STORE", "file://./.medsyn"),
        "log_level": choice("LOG_LEVEL", "info", tuple(LEVELS)),
        "max_message_bytes": number("GRPC_MAX_MESSAGE_BYTES", 64 << 20, 1, 2**31 - 1),
        "shutdown_grace_seconds": number("SHUTDOWN_GRACE_SECONDS", 20, 0, 3600, integer=False),
        "gpu_sample_interval_seconds": number("GPU_SAMPLE_INTERVAL_SECONDS", 5, 0.1, 1e9, integer=False),
        "max_running_jobs": number("JOBS_MAX_RUNNING", defaults.get("max_running_jobs", 2), 1, 1000),
    }
    if "GRPC_AUTH_TOKEN" in v and len(v["GRPC_AUTH_TOKEN"]) < 16:
        problems.append("GRPC_AUTH_TOKEN: must be at least 16 characters (value hidden)")
    if bool(v.get("GRPC_TLS_CERT")) != bool(v.get("GRPC_TLS_KEY")):
        problems.append("GRPC_TLS_CERT and GRPC_TLS_KEY must be set together")
    if v.get("GRPC_TLS_CLIENT_CA") and not v.get("GRPC_TLS_CERT"):
        problems.append("GRPC_TLS_CLIENT_CA (mutual TLS) needs GRPC_TLS_CERT and GRPC_TLS_KEY")
    if v.get("GRPC_AUTH_TOKEN") and v.get("GRPC_AUTH_TOKEN_FILE"):
        problems.append("set GRPC_AUTH_TOKEN or GRPC_AUTH_TOKEN_FILE, not both")
    cert, key, ca = read("GRPC_TLS_CERT"), read("GRPC_TLS_KEY"), read("GRPC_TLS_CLIENT_CA")
    token_file = read("GRPC_AUTH_TOKEN_FILE")
    token = v.get("GRPC_AUTH_TOKEN")
    if token_file is not None:
        token = token_file.decode("utf-8", errors="replace").strip()
        if len(token) < 16:
            problems.append("GRPC_AUTH_TOKEN_FILE: token must be at least 16 characters")
    _check_tls(v, cert, key, ca, problems)
    secured = bool(cert and key) or bool(token)
    open_listen = secured or c["insecure_listen"]
    fallback = "0.0.0.0" if open_listen else "127.0.0.1"
    c["grpc_host"] = v.get("GRPC_HOST", fallback)
    c["metrics_host"] = v.get("METRICS_HOST", fallback)
    if not open_listen and not is_loopback(c["grpc_host"]):
        problems.append(
            f'GRPC_HOST: {json.dumps(c["grpc_host"])} is not a loopback address and the port is unprotected; set GRPC_TLS_CERT/GRPC_TLS_KEY '
            "or GRPC_AUTH_TOKEN/GRPC_AUTH_TOKEN_FILE, or GRPC_INSECURE_LISTEN=true to accept it (docs/configuration.md)"
        )
    c["service"] = {}
    for name, (default, parse) in (extra or {}).items():
        try:
            c["service"][name] = parse(v[name]) if name in v else default
        except ValueError as error:
            problems.append(f"{name}: {error}{shown(name)}")
    if problems:
        raise StartupError(problems)
    c.update(tls=(cert, key, ca) if cert and key else None, auth_token=token)
    return c


def _check_tls(v, cert, key, ca, problems):
    """Parses the TLS material at start, so a garbage file stops the service instead of failing every handshake."""
    if cert is not None and b"-----BEGIN CERTIFICATE-----" not in cert:
        problems.append("GRPC_TLS_CERT: not a PEM certificate")
    elif key is not None and b"PRIVATE KEY-----" not in key:
        problems.append("GRPC_TLS_KEY: not a PEM private key (or it is encrypted)")
    elif cert is not None and key is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(v["GRPC_TLS_CERT"], v["GRPC_TLS_KEY"], password=lambda: b"")
        except (ssl.SSLError, OSError):
            problems.append("GRPC_TLS_KEY: does not match the certificate in GRPC_TLS_CERT (or one of them does not parse)")
    if ca is not None:
        try:
            ssl.create_default_context(cadata=ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError):
            problems.append("GRPC_TLS_CLIENT_CA: not a bundle of PEM CA certificates")


def status_of(error):
    """A domain error as (status code, message): known errors keep their (PHI-free) message, anything else is INTERNAL."""
    if isinstance(error, RpcError):
        return error.code, str(error)
    if isinstance(error, JobError):
        return grpc.StatusCode[error.code], str(error)
    if isinstance(error, ConfigError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, ArtifactNotFound):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, (InvalidKey, MalformedDigest)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, DigestMismatch):
        # The request is fine; the store holds other bytes than it names.
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, StoreError):
        return (grpc.StatusCode.FAILED_PRECONDITION if error.permanent else grpc.StatusCode.UNAVAILABLE), str(error)
    return grpc.StatusCode.INTERNAL, "internal error"


class Metrics:
    """medsyn_<service>_* in the names libs/telemetry gives them."""

    def __init__(self, service):
        self.prefix = f"medsyn_{service}_"
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        p, r = self.prefix, self.registry
        self.requests = Counter(f"{p}grpc_requests", "RPCs completed, by method and gRPC status code.", ["method", "code"], registry=r)
        self.duration = Histogram(f"{p}grpc_request_duration_seconds", "Time from receiving an RPC to sending its status.", ["method"],
                                  buckets=[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], registry=r)
        self.in_flight = Gauge(f"{p}grpc_requests_in_flight", "RPCs started and not yet finished.", ["method"], registry=r)
        gpu = ["gpu", "model"]
        self.gpu_utilization = Gauge(f"{p}gpu_utilization_ratio", "GPU busy fraction over the last sample period (nvidia-smi utilization.gpu / 100).", gpu, registry=r)
        self.gpu_memory_used = Gauge(f"{p}gpu_memory_used_bytes", "GPU memory in use.", gpu, registry=r)
        self.gpu_memory_total = Gauge(f"{p}gpu_memory_total_bytes", "GPU memory in all.", gpu, registry=r)

    def register_jobs(self, registry):
        prefix = self.prefix

        class JobsCollector:
            def collect(self):
                family = GaugeMetricFamily(f"{prefix}jobs", "Jobs this service holds, by kind and state.", labels=["kind", "state"])
                for kind, state, count in registry.counts():
                    family.add_metric([kind, state], count)
                yield family

        self.registry.register(JobsCollector())

    def rpc(self, method):
        """Call when an RPC arrives; call the returned function once with its final status code name."""
        self.in_flight.labels(method).inc()
        started = time.perf_counter()

        def done(code):
            self.in_flight.labels(method).dec()
            self.duration.labels(method).observe(time.perf_counter() - started)
            self.requests.labels(method, code).inc()

        return done

    def serve(self, host, port):
        registry = self.registry

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/metrics":
                    self._send(404, b"not found: metrics are at GET /metrics\n", "text/plain")
                else:
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")

            def _send(self, code, body, content_type):
                self.send_response(code)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server


class GpuSampler:
    """Per-GPU utilisation and memory from nvidia-smi every interval; silent where there is none (CPU nodes)."""

    QUERY = ["--query-gpu=index,name,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"]

    def __init__(self, metrics, interval, logger):
        self.metrics, self.interval, self.logger = metrics, interval, logger
        self.stop = threading.Event()
        self.command = shutil.which("nvidia-smi")

    def start(self):
        if self.command:
            threading.Thread(target=self._loop, name="gpu-sampler", daemon=True).start()

    def _loop(self):
        warned = False
        while not self.stop.is_set():
            try:
                text = subprocess.run([self.command, *self.QUERY], capture_output=True, text=True, timeout=10, check=True).stdout
                for line in filter(str.strip, text.splitlines()):
                    index, model, utilization, used, total = (f.strip() for f in line.split(","))
                    self.metrics.gpu_utilization.labels(index, model).set(float(utilization) / 100)
                    self.metrics.gpu_memory_used.labels(index, model).set(float(used) * 2**20)
                    self.metrics.gpu_memory_total.labels(index, model).set(float(total) * 2**20)
            except (OSError, ValueError, subprocess.SubprocessError) as error:
                if not warned:
                    self.logger.warn(f"GPU sampling failed: {type(error).__name__}")
                    warned = True
            self.stop.wait(self.interval)


class Context:
    """What a service's register() builds its handlers with."""

    def __init__(self, config, store, jobs, logger, metrics):
        self.config, self.store, self.jobs, self.logger, self.metrics = config, store, jobs, logger, metrics
        self.handlers = []
        self.service_names = []
        self.descriptors = []
        self.shutdown_hooks = []

    def add_service(self, file_descriptor, service_name, implementation):
        """A contract's implementation (method name -> function); errors become statuses, every call is counted."""
        service = file_descriptor.services_by_name[service_name]
        self.handlers.append(guarded_handler(service, implementation, self.metrics, self.logger))
        self.service_names.append(service.full_name)
        self.descriptors.append(file_descriptor)


def guarded_handler(service, implementation, metrics, logger):
    """A generic handler for one service: unary and server-streaming methods, each call metered and guarded."""
    methods = {}
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        fn = implementation[method.name]
        request_class = _message_class(method.input_type)
        response_class = _message_class(method.output_type)
        if method.client_streaming:
            handler = _stream_handler(path, fn, metrics, logger, server_streaming=method.server_streaming)
            factory = grpc.stream_stream_rpc_method_handler if method.server_streaming else grpc.stream_unary_rpc_method_handler
        else:
            handler = _stream_handler(path, fn, metrics, logger, server_streaming=method.server_streaming)
            factory = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        methods[method.name] = factory(handler, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, methods)


def _message_class(descriptor):
    from google.protobuf import message_factory

    return getattr(descriptor, "_concrete_class", None) or message_factory.MessageFactory().GetPrototype(descriptor)


def _stream_handler(path, fn, metrics, logger, server_streaming):
    def finish(done, context, code):
        if not context.is_active() and code == "OK":
            code = "DEADLINE_EXCEEDED" if (context.time_remaining() or 1) <= 0.25 else "CANCELLED"
        done(code)
        level = "warn" if code in ("INTERNAL", "UNKNOWN") else "debug"
        logger.log(level, "rpc", method=path, code=code)

    def fail(error, context, done):
        code, message = status_of(error)
        finish(done, context, code.name)
        context.abort(code, message)

    if server_streaming:
        def stream(request, context):
            done = metrics.rpc(path)
            try:
                yield from fn(request, context)
            except Exception as error:  # noqa: BLE001 - mapped to a status, never a crash
                fail(error, context, done)
            finish(done, context, "OK")
        return stream

    def unary(request, context):
        done = metrics.rpc(path)
        try:
            response = fn(request, context)
        except Exception as error:  # noqa: BLE001 - mapped to a status, never a crash
            fail(error, context, done)
        finish(done, context, "OK")
        return response

    return unary


class BearerAuth(grpc.ServerInterceptor):
    """`authorization: Bearer <token>` on every RPC except health and reflection."""

    def __init__(self, token):
        self.expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_SERVICES):
            return handler
        given = dict(details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(str(given).encode(), self.expected):
            return handler

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token in the authorization metadata")

        if handler.request_streaming:
            return (grpc.stream_stream_rpc_method_handler if handler.response_streaming else grpc.stream_unary_rpc_method_handler)(deny)
        return (grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler)(deny)


def health_implementation(c, statuses, lock):
    SERVING = c.health.HealthCheckResponse

    def check(request, context):
        with lock:
            status = statuses.get(request.service)
        if status is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"health status of {json.dumps(request.service)} is unknown")
        return SERVING(status=status)

    def watch(request, context):
        last = None
        while context.is_active():
            with lock:
                status = statuses.get(request.service, SERVING.SERVICE_UNKNOWN)
            if status != last:
                yield SERVING(status=status)
                last = status
            time.sleep(0.5)

    return {"Check": check, "Watch": watch}


def reflection_implementation(c, names, descriptors):
    """grpc.reflection.v1: list services; files by name or by symbol, with their imports."""
    from google.protobuf import descriptor_pb2

    files = {}

    def add(fd):
        if fd.name in files:
            return
        files[fd.name] = fd
        for dep in fd.dependencies:
            add(dep)

    for fd in descriptors:
        add(fd)
    symbols = {}
    for fd in files.values():
        for s in fd.services_by_name.values():
            symbols[s.full_name] = fd
            for m in s.methods:
                symbols[m.full_name] = fd
        for collection in (fd.message_types_by_name, fd.enum_types_by_name):
            for d in collection.values():
                symbols[d.full_name] = fd

    def serialized(fd):
        out, seen = [], set()

        def walk(f):
            if f.name in seen:
                return
            seen.add(f.name)
            proto = descriptor_pb2.FileDescriptorProto()
            f.CopyToProto(proto)
            out.append(proto.SerializeToString())
            for dep in f.dependencies:
                walk(dep)

        walk(fd)
        return out

    R = c.reflection

    def info(requests, context):
        for request in requests:
            kind = request.WhichOneof("message_request")
            response = R.ServerReflectionResponse(valid_host=request.host, original_request=request)
            if kind == "list_services":
                response.list_services_response.service.extend(R.ServiceResponse(name=n) for n in names)
            elif kind in ("file_containing_symbol", "file_by_filename"):
                key = getattr(request, kind)
                fd = symbols.get(key) if kind == "file_containing_symbol" else files.get(key)
                if fd is None:
                    response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
                    response.error_response.error_message = f"{key} not found"
                else:
                    response.file_descriptor_response.file_descriptor_proto.extend(serialized(fd))
            else:
                response.error_response.error_code = grpc.StatusCode.UNIMPLEMENTED.value[0]
                response.error_response.error_message = f"{kind} is not supported"
            yield response

    return {"ServerReflectionInfo": info}


class RunningService:
    def __init__(self, name, server, context, metrics_server, health, grpc_port):
        self.name, self.server, self.context, self.metrics_server = name, server, context, metrics_server
        self.health, self.grpc_port, self.metrics_port = health, grpc_port, metrics_server.server_address[1]
        host = context.config["grpc_host"]
        self.target = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{grpc_port}"
        self._stopping = threading.Lock()
        self.stopped = threading.Event()

    def shutdown(self):
        """Health NOT_SERVING, calls drained up to SHUTDOWN_GRACE_SECONDS, jobs stopped (resumed at the next start)."""
        if not self._stopping.acquire(blocking=False):
            self.stopped.wait()
            return
        log, config = self.context.logger, self.context.config
        log.info("shutting down", graceMs=int(config["shutdown_grace_seconds"] * 1000))
        self.health.set_all(False)
        drained = self.server.stop(config["shutdown_grace_seconds"])
        self.context.jobs.close()
        for hook in self.context.shutdown_hooks:
            hook()
        graceful = drained.wait(config["shutdown_grace_seconds"] + 1)
        self.metrics_server.shutdown()
        log.info("stopped", graceful=bool(graceful))
        self.stopped.set()


class HealthTable:
    def __init__(self, c, names):
        self.c, self.names, self.lock = c, ["", *names], threading.Lock()
        self.statuses = {n: c.health.HealthCheckResponse.NOT_SERVING for n in self.names}

    def set_all(self, serving):
        status = self.c.health.HealthCheckResponse.SERVING if serving else self.c.health.HealthCheckResponse.NOT_SERVING
        with self.lock:
            for n in self.names:
                self.statuses[n] = status


def start_service(name, defaults, register, job_runners, env=None, extra_config=None):
    """Boots the service: config, store check, metrics, job registry (resuming jobs), gRPC server; returns it running."""
    env = os.environ if env is None else env
    config = load_config(env, defaults, extra_config)
    logger = Logger(name, config["log_level"])
    try:
        store = open_store(config["store_uri"], env)
        store.check()
    except StoreError as error:
        raise StartupError([f"MEDSYN_STORE: {error}"]) from None
    metrics = Metrics(name)
    GpuSampler(metrics, config["gpu_sample_interval_seconds"], logger).start()
    jobs = JobRegistry(store, name, job_runners, max_running=config["max_running_jobs"],
                       on_event=lambda e: logger.info("job", **{k: v for k, v in e.items() if k in ("jobId", "kind", "state", "code", "message")}))
    metrics.register_jobs(jobs)
    c = contracts.load()
    context = Context(config, store, jobs, logger, metrics)
    # What child processes (the trainer) inherit: the environment the service was started with.
    context.env = dict(env)
    context.add_service(c.jobs.DESCRIPTOR, "JobService", job_rpcs(c, jobs))
    register(context)
    health = HealthTable(c, context.service_names)
    context.add_service(c.health.DESCRIPTOR, "Health", health_implementation(c, health.statuses, health.lock))
    context.add_service(c.reflection.DESCRIPTOR, "ServerReflection", reflection_implementation(
        c, sorted(health.names[1:] + ["grpc.health.v1.Health"]), list(context.descriptors)))
    interceptors = [BearerAuth(config["auth_token"])] if config["auth_token"] else []
    size = config["max_message_bytes"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), handlers=context.handlers, interceptors=interceptors,
                         options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size), ("grpc.so_reuseport", 0)])
    address = f"{config['grpc_host']}:{config['grpc_port']}"
    if config["tls"]:
        cert, key, ca = config["tls"]
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=bool(ca)))
    else:
        port = server.add_insecure_port(address)
    if not port:
        raise StartupError([f"GRPC_PORT: cannot listen on {address}"])
    try:
        metrics_server = metrics.serve(config["metrics_host"], config["metrics_port"])
    except OSError as error:
        raise StartupError([f"METRICS_PORT: cannot listen on {config['metrics_host']}:{config['metrics_port']} ({error.strerror})"]) from None
    server.start()
    jobs.load()
    if config["insecure_listen"] and not config["tls"] and not config["auth_token"] and not is_loopback(config["grpc_host"]):
        logger.warn("GRPC_INSECURE_LISTEN=true: serving without TLS or a bearer token on a non-loopback address", grpcHost=config["grpc_host"])
    health.set_all(True)
    running = RunningService(name, server, context, metrics_server, health, port)
    logger.info("ready", grpcPort=port, metricsPort=running.metrics_port, grpcHost=config["grpc_host"], tls=bool(config["tls"]),
                mutualTls=bool(config["tls"] and config["tls"][2]), auth=bool(config["auth_token"]), store=store.root_uri)
    return running


def job_rpcs(c, jobs):
    """medsyn.jobs.v1.JobService over the registry."""
    def get_job(request, context):
        return c.jobs.GetJobResponse(job=to_proto_job(c, jobs.get(request.job_id)))

    def list_jobs(request, context):
        page, token = jobs.list(request.page_size, request.page_token)
        return c.jobs.ListJobsResponse(jobs=[to_proto_job(c, r) for r in page], next_page_token=token)

    def watch_job(request, context):
        for record in jobs.watch(request.job_id, context.is_active):
            yield c.jobs.WatchJobResponse(job=to_proto_job(c, record))

    def cancel_job(request, context):
        return c.jobs.CancelJobResponse(job=to_proto_job(c, jobs.cancel(request.job_id)))

    return {"GetJob": get_job, "ListJobs": list_jobs, "WatchJob": watch_job, "CancelJob": cancel_job}


def to_proto_ref(c, ref):
    return c.artifact.ArtifactRef(uri=ref["uri"], sha256=ref["sha256"], size_bytes=ref.get("sizeBytes", 0), media_type=ref.get("mediaType", ""))


def to_proto_job(c, record):
    from google.protobuf import timestamp_pb2

    def stamp(iso):
        t = timestamp_pb2.Timestamp()
        t.FromJsonString(iso)
        return t

    p = record["progress"]
    job = c.job.Job(
        job_id=record["jobId"], request_id=record["requestId"], kind=record["kind"],
        state=c.job.JobState.Value(f"JOB_STATE_{record['state'].upper()}"),
        progress=c.job.Progress(completed=int(p["completed"]), total=int(p["total"]), unit=p["unit"], rate_per_second=p["ratePerSecond"],
                                   eta_seconds=p["etaSeconds"], phase=p["phase"], metrics=p["metrics"], failed=int(p["failed"])),
        create_time=stamp(record["createTime"]), update_time=stamp(record["updateTime"]),
        outputs=[to_proto_ref(c, o) for o in record["outputs"]],
    )
    if record.get("endTime"):
        job.end_time.CopyFrom(stamp(record["endTime"]))
    if record.get("error"):
        e = record["error"]
        job.error.code, job.error.message = e["code"], e["message"]
        job.error.field, job.error.record_id = e.get("field") or "", e.get("recordId") or ""
    return job


def run_main(start):
    """An entry point: start, and on SIGTERM / SIGINT (or stdin closing under MEDSYN_EXIT_WITH_PARENT=1) shut down and exit 0; a bad configuration exits 1 naming the variable."""
    try:
        running = start()
    except StartupError as error:
        Logger("pretrainer").fatal(str(error), code="CONFIG")
        sys.exit(1)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if os.environ.get("MEDSYN_EXIT_WITH_PARENT") == "1":
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(1):
        pass
    running.shutdown()
    sys.exit(0)
