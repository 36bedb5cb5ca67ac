"""Checkpoints as safetensors (8-byte little-endian header length, JSON header, raw little-endian
data; huggingface/safetensors' format), written from torch tensors: the model's state under its
parameter names, the optimizer's per-parameter state as `optimizer.<name>.<slot>`, and the step
and data position as metadata. Also reads initial weights (safetensors, or an ONNX model's
initialisers) by name.
"""
import json
import struct

import numpy as np
import torch

TORCH_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
                torch.int8: "I8", torch.bool: "BOOL"}
NUMPY_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "I8": np.int8,
                "BOOL": np.bool_}


def encode(tensors, metadata=None):
    """bytes of a safetensors file holding {name: tensor} (sorted by name) and string metadata."""
    header, blobs, offset = {"__metadata__": {k: str(v) for k, v in (metadata or {}).items()}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        blob = t.numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": TORCH_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs)


def decode(data):
    """({name: tensor}, metadata) of safetensors bytes; ValueError when they are not one."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError("header length beyond the file")
    header = json.loads(data[8:8 + size])
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + size
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end], dtype=NUMPY_DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


def is_safetensors(data):
    return len(data) >= 9 and struct.unpack("<Q", data[:8])[0] < len(data) and data[8:9] == b"{"


def read_weights(data):
    """{name: tensor} of a safetensors file or of an ONNX model's initialisers."""
    if is_safetensors(data):
        return decode(data)[0]
    import onnx
    from onnx import numpy_helper

    model = onnx.load_model_from_string(data)
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}


def training_state(model, optimizer):
    """Model parameters and buffers, and the optimizer's state, as one flat {name: tensor}."""
    tensors = {name: value for name, value in model.state_dict().items() if not name.endswith("num_batches_tracked")}
    names = {id(p): name for name, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for slot, value in optimizer.state.get(p, {}).items():
                tensors[f"optimizer.{names[id(p)]}.{slot}"] = value if torch.is_tensor(value) else torch.tensor(float(value))
    return tensors


def load_training_state(model, optimizer, tensors):
    """Puts training_state's tensors back (strict: a checkpoint of another model is an error)."""
    model_state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    device = next(model.parameters()).device
    for name, p in model.named_parameters():
        slots = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"optimizer.{name}.") and k.count(".") == name.count(".") + 2}
        if slots:
            optimizer.state[p] = {k: v.to(device) if k != "step" else v for k, v in slots.items()}
