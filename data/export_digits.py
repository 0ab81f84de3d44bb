"""Export the UCI optical handwritten digits (the 8x8 test set bundled with scikit-learn) to digits.csv.

Run from the repository root:  pip install scikit-learn && python3 data/export_digits.py
Writes data/digits.csv: header p0..p63,label; 1,797 rows of integers (pixels 0..16, label 0..9).
"""

import csv
import os

from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"p{i}" for i in range(64)] + ["label"])
        for pixels, label in zip(digits.data, digits.target):
            w.writerow([int(v) for v in pixels] + [int(label)])
    print(f"wrote {out}: {len(digits.target)} rows")


if __name__ == "__main__":
    main()
