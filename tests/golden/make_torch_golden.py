"""Golden files for Kiln's PyTorch interop test (tests/torch_interop.rs).

Writes, with torch 2.x (run: python tests/golden/make_torch_golden.py):
  torch_data.csv            11 rows, features f0..f4, integer class label 0..2
  torch_init.safetensors    the state_dict of nn.Sequential(Linear(5, 7), ReLU(), Linear(7, 3))
  torch_sgd.safetensors     the same after one SGD step (lr 0.1) on the mean cross-entropy of all rows
  torch_probs.json          softmax(model(x)) of the initial model, row-major [11, 3]

With a path argument it instead checks that PyTorch loads a Kiln model file:
  python tests/golden/make_torch_golden.py model.safetensors
"""
import json
import struct
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def write_safetensors(path, tensors):
    """The safetensors format by hand (stdlib only): header length, JSON header, raw f32 bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = bytearray(raw[8 + n + begin : 8 + n + end])
        dtype = DTYPES[info["dtype"]]  # Kiln writes F32, and I64 for BatchNorm's num_batches_tracked
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])
    return out


def model():
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))


def make():
    torch.manual_seed(20261129)
    net = model()
    x = torch.randn(11, 5)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 1, 0])
    with open(HERE / "torch_data.csv", "w") as f:
        f.write("f0,f1,f2,f3,f4,label\n")
        for row, label in zip(x.tolist(), y.tolist()):
            f.write(",".join(repr(v) for v in row) + f",{label}\n")
    # the CSV holds shortest round-trip decimals of the f32 values: read them back identically
    write_safetensors(HERE / "torch_init.safetensors", net.state_dict())
    with torch.no_grad():
        probs = torch.softmax(net(x), dim=1)
    (HERE / "torch_probs.json").write_text(json.dumps([round(v, 9) for v in probs.flatten().tolist()]))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    write_safetensors(HERE / "torch_sgd.safetensors", net.state_dict())
    print(f"loss before the step: {loss.item():.6f}")


def check(path):
    """A Kiln MLP has its Linear layers at even indices and activations between, like nn.Sequential."""
    state = read_safetensors(path)
    print("tensors:", {k: tuple(v.shape) for k, v in state.items()})
    indices = sorted({int(k.split(".")[0]) for k in state})
    modules = []
    for j, i in enumerate(indices):
        if i != 2 * j:
            sys.exit(f"expected Linear layers at indices 0, 2, 4, ..., found {indices}")
        out_features, in_features = state[f"{i}.weight"].shape
        modules.append(torch.nn.Linear(in_features, out_features))
        if j + 1 < len(indices):
            modules.append(torch.nn.ReLU())
    torch.nn.Sequential(*modules).load_state_dict(state, strict=True)
    print("torch.nn.Sequential.load_state_dict(strict=True): ok")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        check(sys.argv[1])
    else:
        make()
