#!/usr/bin/python3
"""PyTorch 1.13 eager peer of bench/synthesizer.ts: the same UNet (zoo_reference.UNet, diffusers
parameter names) loaded from the initialisers of the ONNX file the benchmark built, run on the
same inputs: a classifier-free-guidance batch (2 x batch) per denoising step.

argv[1]: {"onnx": path, "meta": {...}, "batch": n, "latent": s, "tokens": 77, "steps": n, "warmup": n, "threads": n}
stdout (last line): {"stepsPerSecond", "checksum", "maxAbs"}"""
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "libs", "model-zoo", "test", "python"))
from zoo_reference import make_model  # noqa: E402


def inputs(cfg):
    meta = cfg["meta"]
    rows = 2 * cfg["batch"]
    c, s = int(meta["in_channels"]), cfg["latent"]
    n = rows * c * s * s
    sample = torch.tensor([math.sin(i * 0.37) for i in range(n)], dtype=torch.float32).reshape(rows, c, s, s)
    m = rows * cfg["tokens"] * int(meta["cross_attention_dim"])
    context = torch.tensor([math.cos(i * 0.11) for i in range(m)], dtype=torch.float32).reshape(rows, cfg["tokens"], -1)
    return sample, torch.full((rows,), 500.0), context


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    model = make_model(cfg["meta"]).eval()
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(cfg["onnx"]).graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise SystemExit(f"parameters missing from the ONNX file: {missing[:5]}")
    model.load_state_dict({k: weights[k] for k in state})
    sample, timestep, context = inputs(cfg)
    with torch.no_grad():
        for _ in range(cfg["warmup"]):
            out = model(sample, timestep, context)
        start = time.perf_counter()
        for _ in range(cfg["steps"]):
            out = model(sample, timestep, context)
        seconds = time.perf_counter() - start
    print(json.dumps({"stepsPerSecond": cfg["steps"] / seconds, "checksum": float(out.double().sum()), "maxAbs": float(out.abs().max())}))


if __name__ == "__main__":
    main()
