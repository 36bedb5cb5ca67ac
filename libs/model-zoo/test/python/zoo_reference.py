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


# --- A conditional U-Net written with diffusers' UNet2DConditionModel module names. ---


class TimestepEmbedding(nn.Module):
    def __init__(self, channels, dim):
        super().__init__()
        self.linear_1 = nn.Linear(channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t):
        return self.linear_2(F.silu(self.linear_1(t)))


def timestep_embedding(t, dim):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / half
    angles = t.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, context_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def forward(self, x, context):
        b, t, d = x.shape
        split = lambda v: v.view(b, v.shape[1], self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = (q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)).softmax(-1) @ v
        return self.to_out[0](out.transpose(1, 2).reshape(b, t, d))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, context_dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        n = self.norm1(x)
        x = self.attn1(n, n) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, channels, context_dim, heads, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, context_dim, heads)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x, context):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x).reshape(b, c, h * w).transpose(1, 2))
        t = self.proj_out(self.transformer_blocks[0](t, context))
        return t.transpose(1, 2).reshape(b, c, h, w) + x


class Sampler(nn.Module):
    def __init__(self, channels, stride):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1)

    def forward(self, x):
        return self.conv(x if self.stride == 2 else F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, meta):
        super().__init__()
        channels = [int(c) for c in meta["block_channels"].split(",")]
        cross = [c == "1" for c in meta["cross_attention"].split(",")]
        heads = [int(h) for h in meta["heads"].split(",")]
        layers, groups, context = int(meta["layers_per_block"]), int(meta["norm_groups"]), int(meta["cross_attention_dim"])
        c0, temb = channels[0], 4 * channels[0]
        self.c0, self.layers, self.cross = c0, layers, cross
        self.conv_in = nn.Conv2d(int(meta["in_channels"]), c0, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c0, temb)
        self.down_blocks = nn.ModuleList()
        cin = c0
        for i, cout in enumerate(channels):
            block = nn.Module()
            block.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else cout, cout, temb, groups) for j in range(layers)])
            if cross[i]:
                block.attentions = nn.ModuleList([Transformer2DModel(cout, context, heads[i], groups) for _ in range(layers)])
            if i < len(channels) - 1:
                block.downsamplers = nn.ModuleList([Sampler(cout, 2)])
            self.down_blocks.append(block)
            cin = cout
        self.mid_block = nn.Module()
        self.mid_block.resnets = nn.ModuleList([ResnetBlock2D(cin, cin, temb, groups), ResnetBlock2D(cin, cin, temb, groups)])
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(cin, context, heads[-1], groups)])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(channels))
        prev = rev[0]
        for i, cout in enumerate(rev):
            level = len(channels) - 1 - i
            skip_in = rev[min(i + 1, len(channels) - 1)]
            block = nn.Module()
            resnets = []
            for j in range(layers + 1):
                skip = skip_in if j == layers else cout
                resnets.append(ResnetBlock2D((prev if j == 0 else cout) + skip, cout, temb, groups))
            block.resnets = nn.ModuleList(resnets)
            if cross[level]:
                block.attentions = nn.ModuleList([Transformer2DModel(cout, context, heads[level], groups) for _ in range(layers + 1)])
            if i < len(channels) - 1:
                block.upsamplers = nn.ModuleList([Sampler(cout, 1)])
            self.up_blocks.append(block)
            prev = cout
        self.conv_norm_out = nn.GroupNorm(groups, c0, eps=1e-5)
        self.conv_out = nn.Conv2d(c0, int(meta["out_channels"]), 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        temb = self.time_embedding(timestep_embedding(timestep, self.c0))
        h = self.conv_in(sample)
        skips = [h]
        for i, block in enumerate(self.down_blocks):
            for j in range(self.layers):
                h = block.resnets[j](h, temb)
                if self.cross[i]:
                    h = block.attentions[j](h, encoder_hidden_states)
                skips.append(h)
            if hasattr(block, "downsamplers"):
                h = block.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](h, encoder_hidden_states)
        h = self.mid_block.resnets[1](h, temb)
        for i, block in enumerate(self.up_blocks):
            level = len(self.down_blocks) - 1 - i
            for j in range(self.layers + 1):
                h = block.resnets[j](torch.cat([h, skips.pop()], dim=1), temb)
                if self.cross[level]:
                    h = block.attentions[j](h, encoder_hidden_states)
            if hasattr(block, "upsamplers"):
                h = block.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def make_model(meta):
    if meta["model"] == "resnet":
        block, layers = {"18": (BasicBlock, [2, 2, 2, 2]), "50": (Bottleneck, [3, 4, 6, 3])}[meta["depth"]]
        return ResNet(block, layers, int(meta["width"]), int(meta["in_channels"]), int(meta["classes"]))
    if meta["model"] == "unet":
        return UNet(meta)
    if meta["model"] == "vit":
        return torchvision.models.VisionTransformer(int(meta["image_size"]), int(meta["patch_size"]), int(meta["layers"]), int(meta["heads"]), int(meta["hidden"]), int(meta["mlp_dim"]), num_classes=int(meta["classes"]))
    return Bert(meta)


def cross_entropy(model, batch):
    if "sample" in batch:
        # Diffusion: mean squared error between the predicted and the true noise.
        return ((model(batch["sample"], batch["timestep"], batch["encoder_hidden_states"]) - batch["target"]) ** 2).mean()
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
