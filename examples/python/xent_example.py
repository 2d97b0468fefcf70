"""xent from Python: one JSON call, and one safetensors call that gets the gradients back.

    pip install numpy requests safetensors   # safetensors is optional: see below
    XENT_URL=http://localhost:8080 python3 examples/python/xent_example.py
"""

import json
import os
import struct

import numpy as np
import requests

URL = os.environ.get("XENT_URL", "http://localhost:8080")

try:
    from safetensors.numpy import load, save
except ImportError:
    # Debian has no python3-safetensors: the format is simple enough for a few lines of numpy.
    DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "F64": np.float64}
    NAMES = {np.dtype(v): k for k, v in DTYPES.items()}

    def save(tensors):
        header, offset, blobs = {}, 0, []
        for name, array in tensors.items():
            data = np.ascontiguousarray(array).tobytes()
            header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
            blobs.append(data)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + b"".join(blobs)

    def load(body):
        (length,) = struct.unpack("<Q", body[:8])
        header = json.loads(body[8 : 8 + length])
        header.pop("__metadata__", None)
        start = 8 + length
        return {
            name: np.frombuffer(body[start + a : start + b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
            for name, info in header.items()
            for a, b in [info["data_offsets"]]
        }


rng = np.random.default_rng(0)
batch, steps, vocab = 2, 16, 1000
logits = rng.normal(size=(batch, steps, vocab)).astype(np.float32)
targets = rng.integers(0, vocab, size=(batch, steps)).astype(np.int64)
targets[1, 12:] = -100  # padding

# JSON: small batches, readable answers.
answer = requests.post(
    f"{URL}/v1/cross-entropy",
    json={"logits": logits.tolist(), "targets": targets.tolist(), "outputs": ["entropy", "accuracy"]},
    timeout=60,
).json()
print(f"JSON: loss {answer['loss']:.4f} (log V = {np.log(vocab):.4f}), perplexity {answer['perplexity']:.1f}, "
      f"accuracy {answer['accuracy']:.3f} over {answer['count']} tokens")

# safetensors: binary both ways, the gradients back as float16.
response = requests.post(
    f"{URL}/v1/cross-entropy",
    params={"outputs": "gradients", "grad_dtype": "F16"},
    data=save({"logits": logits, "targets": targets}),
    headers={"content-type": "application/octet-stream", "accept": "application/octet-stream"},
    timeout=60,
)
response.raise_for_status()
result = load(response.content)
gradients = result["gradients"]
print(f"safetensors: loss {float(result['loss']):.4f}, gradients {gradients.dtype} {tuple(gradients.shape)}")
