"""Writes an image-only encoder bundle the way an outside user would: a torchvision ResNet-18
exported by torch.onnx.export with a dynamic batch axis, and encoder.json written by hand.

  torchvision_bundle.py OUT_DIR SIZE
"""
import json
import os
import sys

import torch
import torchvision


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torchvision.models.resnet18(weights=None)

    def forward(self, pixel_values):
        n = self.net
        stem = n.relu(n.bn1(n.conv1(pixel_values)))
        l1 = n.layer1(n.maxpool(stem))
        l2 = n.layer2(l1)
        l3 = n.layer3(l2)
        l4 = n.layer4(l3)
        return torch.flatten(n.avgpool(l4), 1), l2, l4


out, size = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = Encoder().eval()
torch.onnx.export(model, torch.zeros(2, 3, size, size), os.path.join(out, "image_encoder.onnx"), opset_version=17,
                  input_names=["pixel_values"], output_names=["image_features", "layer2", "layer4"],
                  dynamic_axes={"pixel_values": {0: "batch"}, "image_features": {0: "batch"}, "layer2": {0: "batch"}, "layer4": {0: "batch"}})
manifest = {
    "format": "medsyn.encoder-bundle/v1",
    "method": "imagenet",
    "embedding_dim": 512,
    "image": {
        "architecture": "resnet18",
        "input": {"name": "pixel_values", "channels": 3, "size": size, "mean": 0.449, "std": 0.226},
        "features": {"name": "image_features", "dim": 512},
        "feature_maps": [{"name": "layer2", "stride": 8, "channels": 128}, {"name": "layer4", "stride": 32, "channels": 512}],
    },
}
with open(os.path.join(out, "encoder.json"), "w") as f:
    json.dump(manifest, f, indent=2)
