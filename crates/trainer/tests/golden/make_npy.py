"""Write the golden NPY files read by tests/npy_idx.rs, with NumPy's own writer (np.save).

Run from this folder: python3 make_npy.py  (needs numpy)
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# [2, 3] float64, values exactly representable in f32.
np.save(os.path.join(HERE, "features_f8.npy"), np.array([[0.5, -1.0, 2.25], [3.0, 0.0, -0.125]], dtype="<f8"))
# [2] int64 labels.
np.save(os.path.join(HERE, "labels_i8.npy"), np.array([1, 0], dtype="<i8"))
