#!/usr/bin/python3
"""PyTorch references for the model zoo: torchvision's ResNet blocks and VisionTransformer, and a
BERT written with the Hugging Face module names. `train CASE OUT` runs the comparison harness;
`names MODEL` prints the state_dict names and shapes of a stock torchvision model."""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "testing", "python"))
from torch_harness import run  # noqa: E402


class ResNet(nn.Module):
    """torchvision.models.ResNet with a configurable base width (torchvision fixes it at 64)."""

    def __init__(self, block, layers, width, in_channels, classes):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.fc = nn.Linear(width * 8 * block.expansion, classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BertSelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x, mask):
        b, t, d = x.shape
        split = lambda v: v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / math.sqrt(d // self.heads) + mask
        return (scores.softmax(-1) @ split(self.value(x))).transpose(1, 2).reshape(b, t, d)


class BertSelfOutput(nn.Module):
    def __init__(self, hidden, size):
        super().__init__()
        self.dense = nn.Linear(size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads)
        self.output = BertSelfOutput(hidden, hidden)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden, size):
        super().__init__()
        self.dense = nn.Linear(hidden, size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.attention = BertAttention(hidden, heads)
        self.intermediate = BertIntermediate(hidden, intermediate)
        self.output = BertSelfOutput(hidden, intermediate)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEmbeddings(nn.Module):
    def __init__(self, vocab, hidden, positions):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1])
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(torch.zeros_like(positions)))


class Bert(nn.Module):
    def __init__(self, meta):
        super().__init__()
        hidden = int(meta["hidden"])
        self.embeddings = BertEmbeddings(int(meta["vocab"]), hidden, int(meta["positions"]))
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([BertLayer(hidden, int(meta["heads"]), int(meta["intermediate"])) for _ in range(int(meta["layers"]))])
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, int(meta["classes"]))

    def forward(self, ids, attention_mask):
        mask = ((1 - attention_mask.float()) * -10000.0)[:, None, None, :]
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h, mask)
        return self.classifier(torch.tanh(self.pooler.dense(h[:, 0])))


def make_model(meta):
    if meta["model"] == "resnet":
        block, layers = {"18": (BasicBlock, [2, 2, 2, 2]), "50": (Bottleneck, [3, 4, 6, 3])}[meta["depth"]]
        return ResNet(block, layers, int(meta["width"]), int(meta["in_channels"]), int(meta["classes"]))
    if meta["model"] == "vit":
        return torchvision.models.VisionTransformer(int(meta["image_size"]), int(meta["patch_size"]), int(meta["layers"]), int(meta["heads"]), int(meta["hidden"]), int(meta["mlp_dim"]), num_classes=int(meta["classes"]))
    return Bert(meta)


def cross_entropy(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"]) if "input_ids" in batch else model(batch["x"])
    return -(F.log_softmax(logits, dim=-1) * batch["y"]).sum(dim=1).mean()


def export_resnet(out_dir):
    """torchvision's ResNet-18 (3 classes, BatchNorm affine parameters randomised so that no two
    tensors are equal and deduplicated by the exporter), exported with torch.onnx.export; plus one
    batch and the eval-mode gradients of the cross-entropy, as the reference for importing."""
    from safetensors_io import save

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    y = F.one_hot(torch.tensor([0, 2]), 3).float()
    torch.onnx.export(model, x, os.path.join(out_dir, "resnet18.onnx"), opset_version=17, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    loss = -(F.log_softmax(model(x), dim=-1) * y).sum(dim=1).mean()
    loss.backward()
    tensors = {"x": x.numpy(), "y": y.numpy()}
    tensors.update({f"grad.{name}": p.grad.numpy() for name, p in model.named_parameters()})
    save(os.path.join(out_dir, "reference.safetensors"), tensors, {"loss": str(loss.item())})


if __name__ == "__main__":
    if sys.argv[1] == "export-resnet":
        export_resnet(sys.argv[2])
    elif sys.argv[1] == "names":
        model = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50, "vit_b_16": torchvision.models.vit_b_16}[sys.argv[2]]()
        print(json.dumps({k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}))
    else:
        run(sys.argv[2], sys.argv[3], make_model, cross_entropy)
