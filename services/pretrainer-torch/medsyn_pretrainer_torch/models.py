"""The encoders of libs/encoder-bundle and the heads of libs/vlp/src/model.ts as torch modules, with
the same parameter names (torchvision's under `image_encoder.`, Hugging Face BERT's under
`text_encoder.`, then `image_projection`, `text_projection`, `image_local_projection`,
`text_local_projection`, `prototypes.weight`), so weights move between the two implementations
(and into encoder bundles) by name.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.vision_transformer import VisionTransformer

from .config import VIT_PRESETS

RESNET_LAYOUT = {"resnet18": ([2, 2, 2, 2], BasicBlock), "resnet34": ([3, 4, 6, 3], BasicBlock),
                 "resnet50": ([3, 4, 6, 3], Bottleneck), "resnet101": ([3, 4, 23, 3], Bottleneck)}


class ResNetEncoder(nn.Module):
    """ResNet v1.5 as torchvision builds it, with a configurable stem width (libs/model-zoo resnet):
    returns the pooled features and the maps stem, layer1..layer4 (strides 2..32)."""

    def __init__(self, architecture, width=64, in_channels=1):
        super().__init__()
        blocks, block = RESNET_LAYOUT[architecture]
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        inplanes = width
        for stage, count in enumerate(blocks):
            planes = width * 2**stage
            layers = []
            for i in range(count):
                stride = 2 if i == 0 and stage > 0 else 1
                out = planes * block.expansion
                downsample = None
                if stride != 1 or inplanes != out:
                    downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                layers.append(block(inplanes, planes, stride, downsample))
                inplanes = out
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.feature_dim = inplanes
        self.map_channels = {"stem": width, **{f"layer{i + 1}": width * 2**i * block.expansion for i in range(4)}}
        self.map_strides = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}

    def forward(self, x):
        stem = F.relu(self.bn1(self.conv1(x)))
        h = F.max_pool2d(stem, 3, 2, 1)
        maps = {"stem": stem}
        for i in range(1, 5):
            h = getattr(self, f"layer{i}")(h)
            maps[f"layer{i}"] = h
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1), maps


class VitEncoder(VisionTransformer):
    """torchvision's Vision Transformer on one-channel radiographs, without a classification head:
    the class token is the global feature, the patch tokens a stride-16 map named `patches`."""

    def __init__(self, architecture, image_size, width=0, in_channels=1):
        preset = VIT_PRESETS[architecture]
        hidden = width or preset["hidden"]
        super().__init__(image_size, preset["patchSize"], preset["layers"], preset["heads"], hidden, hidden * 4)
        self.conv_proj = nn.Conv2d(in_channels, hidden, preset["patchSize"], preset["patchSize"])
        del self.heads
        self.feature_dim = hidden
        self.grid = image_size // preset["patchSize"]
        self.map_channels = {"patches": hidden}
        self.map_strides = {"patches": preset["patchSize"]}

    def forward(self, x):
        h = self._process_input(x)
        h = torch.cat([self.class_token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.encoder(h)
        patches = h[:, 1:].transpose(1, 2).reshape(h.shape[0], self.hidden_dim, self.grid, self.grid)
        return h[:, 0], {"patches": patches}


class BertLayer(nn.Module):
    def __init__(self, d, heads, intermediate):
        super().__init__()
        self.heads, self.scale = heads, 1 / math.sqrt(d // heads)
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.attention.self, name, nn.Linear(d, d))
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.attention.output.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, intermediate)
        self.output = nn.Module()
        self.output.dense = nn.Linear(intermediate, d)
        self.output.LayerNorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask_bias):
        b, t, d = x.shape
        a = self.attention
        split = lambda v: v.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(a.self.query(x)), split(a.self.key(x)), split(a.self.value(x))
        scores = q @ k.transpose(-1, -2) * self.scale + mask_bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        attended = a.output.LayerNorm(a.output.dense(context) + x)
        return self.output.LayerNorm(self.output.dense(F.gelu(self.intermediate.dense(attended))) + attended)


class BertEncoder(nn.Module):
    """A BERT encoder (Devlin et al. 2019) with Hugging Face's parameter names; padding masked with
    -10000 before the softmax, as the original BERT and libs/model-zoo do."""

    def __init__(self, vocab_size, hidden, layers, heads, max_length, max_positions=512):
        super().__init__()
        self.hidden = hidden
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.embeddings.position_embeddings = nn.Embedding(max(max_positions, max_length), hidden)
        self.embeddings.token_type_embeddings = nn.Embedding(2, hidden)
        self.embeddings.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(BertLayer(hidden, heads, hidden * 4) for _ in range(layers))
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(hidden, hidden)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, input_ids, attention_mask):
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = e.LayerNorm(e.word_embeddings(input_ids) + e.position_embeddings(positions) + e.token_type_embeddings(torch.zeros_like(positions)))
        bias = ((1 - attention_mask.to(h.dtype)) * -10000.0)[:, None, None, :]
        for layer in self.encoder.layer:
            h = layer(h, bias)
        return torch.tanh(self.pooler.dense(h[:, 0])), h


def projection(in_dim, out_dim, kind):
    """Linear, or Linear-ReLU-Linear (ConVIRT, Zhang et al. 2020 sec. 2.2) named 0 and 2."""
    return nn.Linear(in_dim, out_dim) if kind == "linear" else nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, out_dim))


def image_encoder_of(config):
    img = config["imageEncoder"]
    if img["architecture"].startswith("vit_"):
        return VitEncoder(img["architecture"], img["imageSize"], img["width"])
    return ResNetEncoder(img["architecture"], img["width"] or 64)


def local_map_name(config):
    """The map local losses attend over: ResNet layer3 (stride 16, as GLoRIA), a ViT's patch tokens."""
    return "patches" if config["imageEncoder"]["architecture"].startswith("vit_") else "layer3"


class VlpModel(nn.Module):
    """Both encoders, their projections into the joint space, and the method's local heads and prototypes."""

    def __init__(self, config, vocab_size):
        super().__init__()
        t, d = config["textEncoder"], config["embeddingSize"]
        self.method = config["method"]
        kind = "mlp" if self.method == "convirt" else "linear"
        self.image_encoder = image_encoder_of(config)
        self.text_encoder = BertEncoder(vocab_size, t["hiddenSize"], t["layers"], t["heads"], t["maxLength"])
        self.image_projection = projection(self.image_encoder.feature_dim, d, kind)
        self.text_projection = projection(t["hiddenSize"], d, kind)
        self.local_map = local_map_name(config)
        if self.method != "convirt":
            self.image_local_projection = nn.Linear(self.image_encoder.map_channels[self.local_map], d)
            self.text_local_projection = nn.Linear(t["hiddenSize"], d)
        if self.method == "mgca":
            self.prototypes = nn.Linear(d, int(config["methodOptions"].get("prototypes", 500)), bias=False)

    def forward(self, pixel_values, input_ids, attention_mask):
        """The loss inputs of one batch: global embeddings, and regions / words for the local losses."""
        features, maps = self.image_encoder(pixel_values)
        pooled, tokens = self.text_encoder(input_ids, attention_mask)
        out = {"image": self.image_projection(features), "text": self.text_projection(pooled)}
        if self.method != "convirt":
            local = maps[self.local_map]
            out["regions"] = self.image_local_projection(local.flatten(2).transpose(1, 2))
            out["words"] = self.text_local_projection(tokens)
        return out
