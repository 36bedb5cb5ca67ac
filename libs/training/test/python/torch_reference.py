#!/usr/bin/python3
"""PyTorch references for the training engine's own test models (see libs/testing/python/torch_harness.py)."""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "testing", "python"))
from torch_harness import run  # noqa: E402


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


def make_model(meta):
    if meta["model"] == "small_cnn":
        return SmallCnn(int(meta["classes"]))
    return Mlp(int(meta["features"]), int(meta["hidden"]), int(meta["classes"]))


def cross_entropy(model, batch):
    return -(F.log_softmax(model(batch["x"]), dim=-1) * batch["y"]).sum(dim=1).mean()


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], make_model, cross_entropy)
