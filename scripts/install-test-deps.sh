#!/usr/bin/env bash
# Installs the system tools the tests use as real peers, from Debian, when any is missing; `npm test`
# runs it first (`pretest`), and so does `.ci/run` through `npm test`.
#
#   bash scripts/install-test-deps.sh             install what is missing (as root, or with sudo)
#   bash scripts/install-test-deps.sh --dry-run   print what is missing and the command that would install it
#
# With everything present it only checks (a few seconds) and runs no apt-get at all. Without
# root or password-less sudo it installs nothing and stops with one message naming the packages.
set -euo pipefail

dry_run=false
case "${1:-}" in
  "") ;;
  -n | --dry-run) dry_run=true ;;
  -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-test-deps: unknown argument '$1' (try --dry-run)" >&2; exit 2 ;;
esac

need() { missing+=("$1"); }
has() { local found; found=$(command -v "$1" 2>/dev/null) && [ -x "$found" ]; }

# Fills `missing` with the packages whose tools or modules are absent.
check() {
  missing=()

  # Tools: promtool (Prometheus' linter, and prometheus itself for the alert-rule tests), protoc with
  # the well-known types (google/protobuf/*.proto: libprotobuf-dev, which protobuf-compiler only
  # recommends) for the Python contract client, openssl for TLS fixtures, kubectl to render manifests.
  { has promtool && has prometheus; } || need prometheus
  has protoc || need protobuf-compiler
  [ -e /usr/include/google/protobuf/timestamp.proto ] || need libprotobuf-dev
  has openssl || need openssl
  has kubectl || need kubectl
  # /usr/bin/python3 with the independent references: grpcio and protobuf (contract client), onnx's
  # checker, PyTorch and torchvision (training engine, model zoo, losses), numpy, pydicom and Pillow
  # (image decoding), scikit-learn (metrics); grpc_tools (stub generation), boto3, prometheus_client
  # and pytest for the PyTorch pretrainer (services/pretrainer-torch), and the official Kubernetes
  # client for its launcher of multi-node Jobs (tested against a fake API server).
  # One interpreter imports them all (PyTorch's import dominates: about 2 s).
  if [ -x /usr/bin/python3 ]; then
    for package in $(/usr/bin/python3 - <<'PY' 2>/dev/null || echo python3
import importlib
for module, package in [
    ("grpc", "python3-grpcio"), ("google.protobuf", "python3-protobuf"), ("onnx.checker", "python3-onnx"),
    ("numpy", "python3-numpy"), ("torch", "python3-torch"), ("torchvision", "python3-torchvision"),
    ("PIL.Image", "python3-pil"), ("pydicom", "python3-pydicom"), ("sklearn.metrics", "python3-sklearn"),
    ("grpc_tools.protoc", "python3-grpc-tools"), ("boto3", "python3-boto3"), ("prometheus_client", "python3-prometheus-client"),
    ("pytest", "python3-pytest"), ("kubernetes.client", "python3-kubernetes"),
]:
    try:
        assert importlib.import_module(module).__file__  # not an empty namespace package
    except Exception:
        print(package)
PY
    ); do need "$package"; done
  else
    need python3
  fi
  # OpenBLAS for PyTorch: without it Debian's torch runs on the reference BLAS (~100x slower).
  [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || [ "$(uname -m)" != x86_64 ] || need libopenblas0-pthread
}

check
[ ${#missing[@]} -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${missing[*]}"
if $dry_run; then
  echo "install-test-deps: missing: ${missing[*]}"
  echo "install-test-deps: would run: apt-get update && $install"
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  sudo=""
elif has sudo && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  sudo=none
fi
if [ "$sudo" = none ] || ! has apt-get; then
  {
    echo "install-test-deps: the tests need packages that are not installed: ${missing[*]}"
    if has apt-get; then
      echo "  install them as root, then rerun:  sudo apt-get update && sudo $install"
    else
      echo "  not a Debian/Ubuntu machine: install the equivalents of those Debian packages, then rerun"
    fi
    echo "  (kubectl: the package of Kubernetes' apt repository, or any kubectl on PATH)"
  } >&2
  exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Check again: a package that installed without providing what the tests use fails here, not in
# a dozen projects later.
check
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-test-deps: still missing after apt-get install: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: done"
