"""Golden values for tests/mlp_golden.rs, computed independently in float64 with numpy.

A 3-layer MLP 5 -> 7 (relu) -> 6 (tanh) -> 3, softmax cross-entropy over a batch of 4, PyTorch
layout (weight [out, in], y = x @ W.T + b). Writes every parameter's gradient, the loss, and the
parameters after one Adam step (PyTorch's formula) to mlp_grads.json.

Run: python3 mlp_grads.py   (numpy only)
"""
import json
import os

import numpy as np

rng = np.random.default_rng(1234)
sizes = [5, 7, 6, 3]
batch = 4
x = rng.uniform(-1, 1, size=(batch, sizes[0]))
labels = rng.integers(0, sizes[-1], size=batch)
params = {}
for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
    bound = 1 / np.sqrt(fan_in)
    params[f"{2 * i}.weight"] = rng.uniform(-bound, bound, size=(fan_out, fan_in))
    params[f"{2 * i}.bias"] = rng.uniform(-bound, bound, size=fan_out)
# Round the inputs to float32 so both sides start from the same numbers.
x = x.astype(np.float32).astype(np.float64)
params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}

# Forward.
W0, b0, W1, b1, W2, b2 = (params[k] for k in ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
a0 = x @ W0.T + b0
h0 = np.maximum(a0, 0)
a1 = h0 @ W1.T + b1
h1 = np.tanh(a1)
z = h1 @ W2.T + b2
m = z.max(axis=1, keepdims=True)
lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
loss = np.mean(lse - z[np.arange(batch), labels])

# Backward by hand.
p = np.exp(z - lse[:, None])
dz = p.copy()
dz[np.arange(batch), labels] -= 1
dz /= batch
grads = {"4.weight": dz.T @ h1, "4.bias": dz.sum(0)}
dh1 = dz @ W2
da1 = dh1 * (1 - h1 ** 2)
grads["2.weight"] = da1.T @ h0
grads["2.bias"] = da1.sum(0)
dh0 = da1 @ W1
da0 = dh0 * (a0 > 0)
grads["0.weight"] = da0.T @ x
grads["0.bias"] = da0.sum(0)

# One Adam step (t = 1), PyTorch's formula.
lr, b1_, b2_, eps = 0.01, 0.9, 0.999, 1e-8
after = {}
for k, g in grads.items():
    m_ = (1 - b1_) * g
    v_ = (1 - b2_) * g * g
    after[k] = params[k] - lr * (m_ / (1 - b1_)) / (np.sqrt(v_ / (1 - b2_)) + eps)

out = {
    "sizes": sizes,
    "batch": batch,
    "x": x.ravel().tolist(),
    "labels": labels.tolist(),
    "params": {k: v.ravel().tolist() for k, v in params.items()},
    "loss": float(loss),
    "grads": {k: v.ravel().tolist() for k, v in grads.items()},
    "adam_lr": lr,
    "after_adam": {k: v.ravel().tolist() for k, v in after.items()},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp_grads.json"), "w") as f:
    json.dump(out, f, indent=1)
print("loss", loss)
