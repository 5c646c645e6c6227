#!/usr/bin/python3
"""descent against scikit-learn's MLPClassifier on scikit-learn's digits table.

Both train on the same stratified 80/20 split (scikit-learn's train_test_split, seed 0),
written as two CSV files that descent reads with --data/--test. scikit-learn runs with its
defaults and one hidden layer of 100 (on the raw features, and again standardised, as descent
standardises tables by default); descent with its mini-batch defaults and --hidden 100.

    /usr/bin/python3 bench/sklearn_digits.py [path/to/descent] [descent train flags...]
"""
import gzip
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATA = Path("/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz")
SEED = 0

def main():
    descent = sys.argv[1] if len(sys.argv) > 1 else "target/release/descent"
    extra = sys.argv[2:]
    with gzip.open(DATA, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    x, y = table[:, :-1], table[:, -1].astype(int)
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SEED
    )
    print(f"digits: {len(y)} rows, {x.shape[1]} features, {len(set(y))} classes; "
          f"train {len(ytr)}, test {len(yte)} (stratified, seed {SEED})")

    for name, model in [
        ("sklearn MLPClassifier(100) raw", MLPClassifier(hidden_layer_sizes=(100,), random_state=SEED)),
        ("sklearn MLPClassifier(100) standardised",
         make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(100,), random_state=SEED))),
    ]:
        t = time.perf_counter()
        model.fit(xtr, ytr)
        fit = time.perf_counter() - t
        acc = (model.predict(xte) == yte).mean()
        print(f"{name:<42} test acc {100 * acc:6.2f}%  fit {fit:6.2f}s")

    with tempfile.TemporaryDirectory() as d:
        tr, te = Path(d) / "train.csv", Path(d) / "test.csv"
        for path, xs, ys in [(tr, xtr, ytr), (te, xte, yte)]:
            np.savetxt(path, np.column_stack([xs, ys]), delimiter=",", fmt="%g")
        metrics = Path(d) / "metrics.jsonl"
        cmd = [descent, "train", "--quiet", "--device", "cpu", "--hidden", "100",
               "--data", f"csv:{tr}", "--test", f"csv:{te}", "--metrics", str(metrics), *extra]
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
        epochs = [l for l in out.splitlines() if l.startswith("epoch")]
        acc = float(re.search(r"test acc ([\d.]+)%", epochs[-1]).group(1))
        import json
        train_s = json.loads(metrics.read_text().splitlines()[-1])["elapsed_seconds"]
        print(f"{'descent --hidden 100 ' + ' '.join(extra):<42} test acc {acc:6.2f}%  "
              f"train {train_s:6.3f}s (whole command {wall:.2f}s, {len(epochs)} epochs)")

if __name__ == "__main__":
    main()
