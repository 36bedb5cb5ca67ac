#!/usr/bin/python3
"""PyTorch 1.13 eager peer for `npm run bench:pretrainer`: the same encoders (ResNet-18 image,
BERT text), projections, local heads and loss (ConVIRT, GLoRIA or MGCA, vectorised over the
batch) and the same AdamW step as medsyn's pre-training graph, on random batches of the same
shape, 2 CPU threads. Prints one JSON line: samples per second."""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "libs", "model-zoo", "test", "python"))
from zoo_reference import BasicBlock, Bert, ResNet  # noqa: E402

MASKED = -1e9


class Encoders(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hidden = c["embedding"], c["hidden"]
        self.image = ResNet(BasicBlock, [2, 2, 2, 2], 64, 1, 1)
        self.text = Bert({"hidden": hidden, "vocab": c["vocab"], "positions": 512, "heads": c["heads"], "intermediate": hidden * 4, "layers": c["layers"], "classes": 1})
        mlp = c["method"] == "convirt"
        self.image_projection = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, d)) if mlp else nn.Linear(512, d)
        self.text_projection = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d)) if mlp else nn.Linear(hidden, d)
        self.image_local = nn.Linear(256, d)
        self.text_local = nn.Linear(hidden, d)
        self.prototypes = nn.Parameter(torch.empty(c["prototypes"], d).uniform_(-d ** -0.5, d ** -0.5))

    def forward(self, pixels, ids, mask):
        r = self.image
        x = r.maxpool(r.relu(r.bn1(r.conv1(pixels))))
        layer3 = r.layer3(r.layer2(r.layer1(x)))
        features = torch.flatten(F.adaptive_avg_pool2d(r.layer4(layer3), 1), 1)
        t = self.text
        bias = ((1 - mask.float()) * -10000.0)[:, None, None, :]
        h = t.embeddings(ids)
        for layer in t.encoder.layer:
            h = layer(h, bias)
        pooled = torch.tanh(t.pooler.dense(h[:, 0]))
        regions = self.image_local(layer3.flatten(2).transpose(1, 2))
        return self.image_projection(features), self.text_projection(pooled), regions, self.text_local(h)


def diagonal_ce(logits):
    labels = torch.arange(len(logits))
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def convirt(img, txt):
    a, b = diagonal_ce(F.normalize(img, dim=1) @ F.normalize(txt, dim=1).t() / 0.1)
    return 0.75 * a + 0.25 * b


def gloria(img, txt, regions, words, word_mask):
    g0, g1 = diagonal_ce(F.normalize(img, dim=1) @ F.normalize(txt, dim=1).t() * 10)
    w, r = words.unsqueeze(1), regions.unsqueeze(0)
    scores = w @ r.transpose(2, 3)
    attn = torch.softmax(torch.softmax(scores + ((1 - word_mask) * MASKED)[:, None, :, None], 2) * 4, 3)
    context = attn @ r
    cos = (w * context).sum(3) / (w.norm(dim=3) * context.norm(dim=3)).clamp(min=1e-8)
    z = torch.log((torch.exp(cos * 5) * word_mask[:, None, :]).sum(2))
    l0, l1 = diagonal_ce(z.t() * 10)
    return g0 + g1 + l0 + l1


def sinkhorn(scores):
    with torch.no_grad():
        q = torch.exp(scores / 0.05).t()
        q /= q.sum()
        k, b = q.shape
        for _ in range(3):
            q *= (1 / k) / q.sum(dim=1, keepdim=True)
            q *= (1 / b) / q.sum(dim=0, keepdim=True)
        return (q / q.sum(dim=0, keepdim=True)).t()


def align(queries, keys, key_bias, query_bias, weights):
    sim = queries @ keys.transpose(1, 2)
    if key_bias is not None:
        sim = sim + key_bias
    summary = F.normalize(torch.softmax(sim / 0.1, 2) @ keys, dim=-1)
    s = queries @ summary.transpose(1, 2) / 0.1
    if query_bias is not None:
        s = s + query_bias + query_bias.transpose(1, 2)
    eye = torch.eye(s.shape[1])
    rows = (F.log_softmax(s, 2) * eye).sum(2)
    cols = (F.log_softmax(s, 1) * eye).sum(1)
    batch = s.shape[0]
    return (-(rows * weights).sum() / batch - (cols * weights).sum() / batch) / 2


def mgca(img, txt, regions, words, word_mask, prototypes):
    img, txt, patches, words = (F.normalize(v, dim=-1) for v in (img, txt, regions, words))
    a, b = diagonal_ce(img @ txt.t() / 0.07)
    bias = (1 - word_mask) * MASKED
    word_weights = word_mask / word_mask.sum(1, keepdim=True)
    patch_weights = torch.full((1, patches.shape[1]), 1 / patches.shape[1])
    token = align(words, patches, None, bias[:, :, None], word_weights) + align(patches, words, bias[:, None, :], None, patch_weights)
    protos = F.normalize(prototypes, dim=1)
    img_scores, txt_scores = img @ protos.t(), txt @ protos.t()
    i2t = -(sinkhorn(img_scores) * F.log_softmax(txt_scores / 0.2, 1)).sum(1).mean()
    t2i = -(sinkhorn(txt_scores) * F.log_softmax(img_scores / 0.2, 1)).sum(1).mean()
    return a + b + token + (i2t + t2i) / 2


def main():
    c = json.loads(sys.argv[1])
    torch.set_num_threads(c["threads"])
    torch.manual_seed(0)
    model = Encoders(c).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    b, s, length = c["batch"], c["size"], c["max_length"]
    pixels = torch.randn(b, 1, s, s)
    ids = torch.randint(5, c["vocab"], (b, length))
    mask = torch.ones(b, length, dtype=torch.int64)
    word_mask = torch.ones(b, length)
    word_mask[:, 0] = 0
    word_mask[:, -1] = 0

    def step():
        optimizer.zero_grad()
        img, txt, regions, words = model(pixels, ids, mask)
        if c["method"] == "convirt":
            loss = convirt(img, txt)
        elif c["method"] == "gloria":
            loss = gloria(img, txt, regions, words, word_mask)
        else:
            loss = mgca(img, txt, regions, words, word_mask, model.prototypes)
        loss.backward()
        optimizer.step()

    for _ in range(c["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(c["steps"]):
        step()
    print(json.dumps({"samplesPerSecond": c["steps"] * b / (time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
