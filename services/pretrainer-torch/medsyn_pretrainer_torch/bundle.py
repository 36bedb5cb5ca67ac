"""Encoder bundles (docs/encoder-bundle.md), what the evaluator reads: image_encoder.onnx
(pixel_values -> image_features, image_embedding, one output per feature map), text_encoder.onnx
(input_ids, attention_mask -> text_embedding, token_features), tokenizer/vocab.txt, and
encoder.json written last, so a reader that finds it finds the models it describes."""
import io
import json

import torch
from torch import nn

FORMAT = "medsyn.encoder-bundle/v1"
OPSET = 17


class ImageExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder, self.projection = model.image_encoder, model.image_projection
        self.maps = list(model.image_encoder.map_channels)

    def forward(self, pixel_values):
        features, maps = self.encoder(pixel_values)
        return (features, self.projection(features), *(maps[name] for name in self.maps))


class TextExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder, self.projection = model.text_encoder, model.text_projection

    def forward(self, input_ids, attention_mask):
        pooled, tokens = self.encoder(input_ids, attention_mask)
        return self.projection(pooled), tokens


def manifest_of(model, config, lineage):
    img, text, d = config["imageEncoder"], config["textEncoder"], config["embeddingSize"]
    encoder = model.image_encoder
    return {
        "format": FORMAT,
        "method": config["method"],
        "embedding_dim": d,
        "image": {
            "architecture": "vit" if img["architecture"].startswith("vit_") else img["architecture"],
            "input": {"name": "pixel_values", "channels": 1, "size": img["imageSize"], "mean": 0.5, "std": 0.5},
            "features": {"name": "image_features", "dim": encoder.feature_dim},
            "embedding": {"name": "image_embedding", "dim": d},
            "feature_maps": [{"name": n, "stride": encoder.map_strides[n], "channels": c} for n, c in encoder.map_channels.items()],
        },
        "text": {
            "architecture": "bert", "max_length": text["maxLength"], "lowercase": True, "vocab": "tokenizer/vocab.txt",
            "embedding": {"name": "text_embedding", "dim": d}, "token_features": {"name": "token_features", "dim": text["hiddenSize"]},
        },
        "lineage": lineage,
    }


def _onnx(module, inputs, input_names, output_names):
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    with torch.no_grad():
        torch.onnx.export(module, inputs, buffer, opset_version=OPSET, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, do_constant_folding=True)
    return buffer.getvalue()


def export_bundle(model, config, vocab_txt, lineage):
    """{file: bytes} of the bundle, from the model in evaluation mode (BatchNorm on its running statistics), on CPU."""
    model = model.to("cpu").eval()
    size, length = config["imageEncoder"]["imageSize"], config["textEncoder"]["maxLength"]
    image = ImageExport(model)
    files = {
        "image_encoder.onnx": _onnx(image, (torch.zeros(2, 1, size, size),), ["pixel_values"], ["image_features", "image_embedding", *image.maps]),
        "text_encoder.onnx": _onnx(TextExport(model), (torch.ones(2, length, dtype=torch.long), torch.ones(2, length, dtype=torch.long)),
                                   ["input_ids", "attention_mask"], ["text_embedding", "token_features"]),
        "tokenizer/vocab.txt": vocab_txt.encode("utf-8"),
    }
    files["encoder.json"] = (json.dumps(manifest_of(model, config, lineage), indent=2) + "\n").encode()
    return files


MEDIA_TYPES = {"image_encoder.onnx": "application/onnx", "text_encoder.onnx": "application/onnx", "tokenizer/vocab.txt": "text/plain",
               "encoder.json": "application/json"}


def write_bundle(store, prefix, files):
    """Puts the files under prefix, encoder.json last; {file: ref}."""
    return {name: store.put(f"{prefix}/{name}", files[name], MEDIA_TYPES[name]) for name in MEDIA_TYPES}
