#!/usr/bin/python3
"""PyTorch 1.13 eager peer for `npm run bench:train`: the same model, batch and AdamW step as
medsyn's, on 2 CPU threads. Prints one JSON line: steps per second and peak RSS."""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "libs", "model-zoo", "test", "python"))
from zoo_reference import make_model  # noqa: E402


def main():
    config = json.loads(sys.argv[1])
    torch.set_num_threads(config["threads"])
    torch.manual_seed(0)
    model = make_model({k: str(v) for k, v in config["meta"].items()})
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    b = config["batch"]
    if config["meta"]["model"] == "bert":
        t = int(config["tokens"])
        inputs = (torch.randint(1, int(config["meta"]["vocab"]), (b, t)), torch.ones(b, t, dtype=torch.int64))
    else:
        s = int(config["size"])
        inputs = (torch.randn(b, int(config.get("channels", 3)), s, s),)
    target = F.one_hot(torch.randint(0, int(config["meta"]["classes"]), (b,)), int(config["meta"]["classes"])).float()

    def step():
        optimizer.zero_grad()
        loss = -(F.log_softmax(model(*inputs), dim=-1) * target).sum(dim=1).mean()
        loss.backward()
        optimizer.step()

    for _ in range(config["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(config["steps"]):
        step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"stepsPerSecond": config["steps"] / elapsed, "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
