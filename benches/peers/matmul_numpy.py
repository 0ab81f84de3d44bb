"""NumPy peer of benches/matmul.rs: same sizes, same line format, float32, median of repeats."""
import sys
import time

import numpy as np

SIZES = [int(a) for a in sys.argv[1:]] or [256, 512, 1024, 2048]
BUDGET = 1.5  # seconds per size
MIN_REPS = 5

for n in SIZES:
    a = ((np.arange(n * n) * 7919) % 1009).astype(np.float32).reshape(n, n) / 1009 - 0.5
    b = a.copy()
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up
    times, begun = [], time.perf_counter()
    while len(times) < MIN_REPS or time.perf_counter() - begun < BUDGET:
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    secs = sorted(times)[len(times) // 2]
    print(f"bench=matmul backend=numpy n={n} gflops={2 * n**3 / secs / 1e9:.1f}")
