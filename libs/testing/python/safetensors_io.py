"""A small safetensors reader/writer written from the format's documentation (8-byte little-endian
header size, JSON header, little-endian row-major data), independent of medsyn's TypeScript one."""
import json
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    base = 8 + size
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin : base + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = array.copy()
    return tensors, metadata


def save(path, tensors, metadata=None):
    header = {"__metadata__": metadata or {}}
    offset = 0
    names = sorted(tensors)
    for name in names:
        array = np.ascontiguousarray(tensors[name])
        header[name] = {"dtype": CODES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name]).tobytes())
