"""Write tiny.safetensors, the golden file read by tests/checkpoint.rs, with the Python stdlib only.

This is an independent implementation of the safetensors layout (8-byte little-endian header length,
JSON header padded with spaces to 8 bytes, little-endian tensor data), so the Rust reader is checked
against a file it did not write. Shapes follow PyTorch nn.Sequential(Linear(3, 2), ReLU(), Linear(2, 1)):
`0.weight` is [out, in]. Run from this folder: python3 make_safetensors.py
"""

import json
import os
import struct

# name -> (shape, values); insertion order is the data order in the file.
TENSORS = {
    "0.weight": ([2, 3], [0.1, -0.2, 0.3, 1.5, -2.25, 1e-3]),
    "0.bias": ([2], [0.5, -0.5]),
    "2.weight": ([1, 2], [3.0, -4.0]),
    "2.bias": ([1], [0.25]),
}
METADATA = {"kiln.step": "7", "kiln.labels": json.dumps(["cat", "dog"])}


def main() -> None:
    header = {"__metadata__": METADATA}
    data = b""
    for name, (shape, values) in TENSORS.items():
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.safetensors")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    print(f"wrote {out}: {8 + len(text) + len(data)} bytes")


if __name__ == "__main__":
    main()
