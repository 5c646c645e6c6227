#!/usr/bin/python3
"""Writes a numeric CSV for the loading benchmark: ROWS rows of 100 features ("%.4f", uniform in
[-10, 10)) and an integer label 0..9 last, no header, seeded.

    /usr/bin/python3 bench/make_big_csv.py OUT.csv [ROWS]   (1_250_000 rows is about 1 GB)
"""
import sys

import numpy as np

out = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_250_000
rng = np.random.default_rng(0)
with open(out, "w") as f:
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        x = rng.uniform(-10, 10, size=(n, 100))
        y = rng.integers(0, 10, size=n)
        lines = "\n".join(
            ",".join(f"{v:.4f}" for v in row) + f",{c}" for row, c in zip(x, y)
        )
        f.write(lines + "\n")
