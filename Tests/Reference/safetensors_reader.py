"""A minimal independent safetensors reader for the tests (numpy only)."""
import json
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def _header(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def read(path):
    header, body = _header(path)
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(body[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def metadata(path):
    return _header(path)[0].get("__metadata__", {})
