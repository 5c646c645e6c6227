#!/usr/bin/env python3
"""PyTorch peer of `descent bench --device cpu`: the same model and loop, timed the same way.

784-128-10, relu, cross-entropy, plain SGD (momentum 0), MNIST's 60,000 training images resident
as one float tensor (pixels / 255) and one label tensor. A round is the first ~4096 samples of a
shuffled epoch (at least one step), timed end to end; the first round is a warm-up; the figure
is the median samples/s over the rounds of `--seconds` seconds (at least 3 rounds).

    /work/venv-torch/bin/python bench/pytorch_mlp.py --threads 2 --batch-sizes 1,64,full
"""

import argparse
import gzip
import os
import statistics
import struct
import time

import torch


def read_idx(path):
    """An IDX file (plain or .gz) as a uint8 tensor of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def find(data_dir, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(data_dir, candidate)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{data_dir}: no {name}[.gz]; pass --data-dir")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="/work/shared/data/mnist")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-sizes", default="1,64,full")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = read_idx(find(args.data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(find(args.data_dir, "train-labels-idx1-ubyte"))
    n = images.shape[0]
    x_all = images.reshape(n, -1).float().div_(255.0)
    y_all = labels.long()
    flops = 2 * (784 * args.hidden + args.hidden * 10) * 3 - 2 * 784 * args.hidden

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"model 784-{args.hidden}-10, {n} training samples")
    print("| batch | samples/s (median) | GFLOP/s | rounds |")
    print("|---|---|---|---|")
    for spec in args.batch_sizes.split(","):
        batch = n if spec == "full" else int(spec)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 10)
        )
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.0)
        loss_fn = torch.nn.CrossEntropyLoss()
        order = torch.randperm(n)
        steps = max(1, min(4096 // batch, -(-n // batch)))
        rates = []
        t_all = time.perf_counter()
        rounds = 0
        while rounds < 2 or time.perf_counter() - t_all < args.seconds or len(rates) < 3:
            t0 = time.perf_counter()
            samples = 0
            for s in range(steps):
                if batch == n:
                    # The whole set: no gather, the order does not change the sum.
                    x, y = x_all, y_all
                else:
                    idx = order[s * batch : (s + 1) * batch]
                    x, y = x_all[idx], y_all[idx]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                samples += x.shape[0]
            dt = time.perf_counter() - t0
            if rounds > 0:
                rates.append(samples / dt)
            rounds += 1
        median = statistics.median(rates)
        name = f"full ({n})" if batch == n else str(batch)
        print(f"| {name} | {median:.0f} | {median * flops / 1e9:.1f} | {len(rates)} |", flush=True)


if __name__ == "__main__":
    main()
