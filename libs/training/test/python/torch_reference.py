#!/usr/bin/python3
"""PyTorch (Debian python3-torch 1.13) reference for medsyn's training engine.

Reads a case written by the TypeScript test: initial parameters (PyTorch names), batches, and in
the metadata the model, the optimizer and the number of steps. Computes, with torch autograd and
torch.optim, the first step's loss and parameter gradients, then the losses of all steps and the
final parameters, and writes them to the output file.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import load, save


class SmallCnn(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        h = F.relu(self.conv2(h))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class Mlp(nn.Module):
    def __init__(self, features, hidden, classes):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


def build(meta):
    if meta["model"] == "small_cnn":
        return SmallCnn(int(meta["classes"]))
    if meta["model"] == "mlp":
        return Mlp(int(meta["features"]), int(meta["hidden"]), int(meta["classes"]))
    raise ValueError(meta["model"])


def loss_of(model, x, y):
    logits = model(x)
    return -(F.log_softmax(logits, dim=-1) * y).sum(dim=1).mean()


def main():
    tensors, meta = load(sys.argv[1])
    model = build(meta)
    state = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("batch.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    model.train()
    opt = json.loads(meta["optimizer"])
    if opt["kind"] == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(meta["lr"]), betas=(opt["beta1"], opt["beta2"]), eps=opt["epsilon"], weight_decay=opt["weightDecay"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=float(meta["lr"]), momentum=opt["momentum"], weight_decay=opt["weightDecay"])
    out = {}
    losses = []
    for step in range(int(meta["steps"])):
        x = torch.from_numpy(tensors[f"batch.{step}.x"])
        y = torch.from_numpy(tensors[f"batch.{step}.y"])
        optimizer.zero_grad()
        loss = loss_of(model, x, y)
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                out[f"grad.{name}"] = p.grad.detach().numpy().copy()
        optimizer.step()
        losses.append(loss.item())
    for name, value in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            out[f"final.{name}"] = value.detach().numpy()
    save(sys.argv[2], out, {"losses": json.dumps(losses)})


if __name__ == "__main__":
    main()
