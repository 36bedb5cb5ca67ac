"""The Python stubs of the contracts, generated from proto/ with grpc_tools.protoc into gen/
(ignored by git, never edited): at build time (`python -m medsyn_pretrainer_torch.contracts`)
and, when missing or older than the .proto files, on first import.
"""
import fcntl
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

SERVICE_ROOT = Path(__file__).resolve().parent.parent
# The repository's contracts; the Docker image copies them next to the service.
PROTO_ROOT = Path(os.environ.get("MEDSYN_PROTO_DIR", SERVICE_ROOT.parent.parent / "proto"))
STANDARD_ROOT = SERVICE_ROOT / "std-protos"
GEN = SERVICE_ROOT / "gen"

CONTRACT_FILES = [
    "medsyn/common/v1/artifact.proto",
    "medsyn/common/v1/error.proto",
    "medsyn/common/v1/job.proto",
    "medsyn/jobs/v1/jobs.proto",
    "medsyn/pretrainer/v1/pretrainer.proto",
]
STANDARD_FILES = ["grpc_standard/health.proto", "grpc_standard/reflection.proto"]


def _well_known_root():
    # Debian's libprotobuf-dev puts google/protobuf/*.proto under /usr/include; a pip grpcio-tools bundles them.
    if Path("/usr/include/google/protobuf/timestamp.proto").exists():
        return "/usr/include"
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def _sources():
    return [(PROTO_ROOT, f) for f in CONTRACT_FILES] + [(STANDARD_ROOT, f) for f in STANDARD_FILES]


def _digest():
    h = hashlib.sha256()
    for root, name in _sources():
        h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()


def generate(force=False):
    """Writes gen/ unless it already holds the stubs of these exact .proto files."""
    digest = _digest()
    stamp = GEN / ".sources.sha256"
    if not force and stamp.exists() and stamp.read_text() == digest:
        return False
    # Processes started together (two services, a test's ranks) generate one at a time.
    with open(SERVICE_ROOT / ".gen.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stamp.exists() and stamp.read_text() == digest:
            return False
        _write(digest)
    return True


def _write(digest):
    out = Path(tempfile.mkdtemp(prefix="gen-", dir=SERVICE_ROOT))
    try:
        for root, names in ((PROTO_ROOT, CONTRACT_FILES), (STANDARD_ROOT, STANDARD_FILES)):
            subprocess.run(
                [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", f"-I{_well_known_root()}",
                 f"--python_out={out}", f"--grpc_python_out={out}", *names],
                check=True,
            )
        (out / ".sources.sha256").write_text(digest)
        # Publish whole: a reader never imports half a generation.
        if GEN.exists():
            shutil.rmtree(GEN)
        out.rename(GEN)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def load():
    """The generated modules, by role."""
    generate()
    if str(GEN) not in sys.path:
        sys.path.insert(0, str(GEN))
    m = importlib.import_module
    return SimpleNamespace(
        artifact=m("medsyn.common.v1.artifact_pb2"),
        job=m("medsyn.common.v1.job_pb2"),
        jobs=m("medsyn.jobs.v1.jobs_pb2"),
        jobs_grpc=m("medsyn.jobs.v1.jobs_pb2_grpc"),
        pretrainer=m("medsyn.pretrainer.v1.pretrainer_pb2"),
        pretrainer_grpc=m("medsyn.pretrainer.v1.pretrainer_pb2_grpc"),
        health=m("grpc_standard.health_pb2"),
        health_grpc=m("grpc_standard.health_pb2_grpc"),
        reflection=m("grpc_standard.reflection_pb2"),
        reflection_grpc=m("grpc_standard.reflection_pb2_grpc"),
    )


if __name__ == "__main__":
    print("generated" if generate(force="--force" in sys.argv) else "up to date", GEN)
