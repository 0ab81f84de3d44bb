#!/usr/bin/env python3
"""Kiln vs scikit-learn's MLPRegressor on public regression sets that scikit-learn ships (no
download): exports each set as train/test CSVs for Kiln and prints scikit-learn's test MAE.

    python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn
    /tmp/skl/bin/python benches/sklearn/regression.py target/sklearn   # CSVs + sklearn's MAE
    benches/sklearn/run_kiln.sh target/sklearn                         # Kiln's MAE, same splits

Not run in CI (scikit-learn is no dependency of Kiln). Sets: `load_diabetes` (442 rows, 10
features, bundled), `make_friedman1` (2,000 rows, 10 features, the Friedman #1 benchmark, generated
with a fixed seed; `fetch_california_housing` needs a download, so it is used only when already
cached). Split: 80/20, `random_state=0`.

Two scikit-learn baselines: `MLPRegressor()` with every default (inputs and target as given), and
the same MLP with standardized inputs and target (`StandardScaler` + `TransformedTargetRegressor`),
which is what Kiln does by default.
"""
import os
import sys

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import warnings

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def sets():
    d = load_diabetes()
    yield "diabetes", d.data, d.target, list(d.feature_names)
    x, y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    yield "friedman1", x, y, [f"x{i}" for i in range(x.shape[1])]
    try:
        from sklearn.datasets import fetch_california_housing

        c = fetch_california_housing(download_if_missing=False)
        yield "california", c.data, c.target, list(c.feature_names)
    except (OSError, IOError):
        print("california: not cached (needs a download), skipped", file=sys.stderr)


def write_csv(path, x, y, names):
    with open(path, "w") as f:
        f.write(",".join(names + ["y"]) + "\n")
        for row, t in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{float(t)!r}\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/sklearn"
    os.makedirs(out, exist_ok=True)
    print(f"{'set':<11} {'rows':>6} {'sklearn MAE (defaults)':>23} {'sklearn MAE (scaled x, y)':>26}")
    for name, x, y, names in sets():
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0)
        write_csv(os.path.join(out, f"{name}_train.csv"), xtr, ytr, names)
        write_csv(os.path.join(out, f"{name}_test.csv"), xte, yte, names)
        plain = MLPRegressor(random_state=0).fit(xtr, ytr)
        scaled = TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), MLPRegressor(random_state=0)),
            transformer=StandardScaler(),
        ).fit(xtr, ytr)
        mae = lambda m: float(np.mean(np.abs(m.predict(xte) - yte)))
        print(f"{name:<11} {len(y):>6} {mae(plain):>23.4f} {mae(scaled):>26.4f}")


if __name__ == "__main__":
    main()
