"""Speed of the reference max pooling: loops vs vectorised NumPy vs torch, measured in one run.

Usage: python benchmarks/pooling_speed.py [--repeat N]

The implementations are the reference solutions, read from the source
notebook solutions/01_pooling/01_pooling.ipynb, so this measures exactly what
the notebook teaches. Prints each time and the ratios; exits 1 if the
vectorised version is less than 20x faster than the loops (the course's claim).
"""
import argparse
import timeit

import numpy as np
import torch
import torch.nn.functional as F

from autograder.solutions import load_solutions

CLAIMED_SPEEDUP = 20


def best(fn, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ns = load_solutions("01_pooling", ["max_pool_2d", "max_pool_2d_vectorized"], {"np": np})
    x = np.random.default_rng(0).standard_normal((64, 56, 56)).astype(np.float32)
    t = torch.from_numpy(x)
    assert np.array_equal(ns["max_pool_2d"](x), ns["max_pool_2d_vectorized"](x))

    loop = best(lambda: ns["max_pool_2d"](x), 1, args.repeat)
    vec = best(lambda: ns["max_pool_2d_vectorized"](x), 20, args.repeat)
    ref = best(lambda: F.max_pool2d(t, 2, 2), 50, args.repeat)
    print(f"max pooling, (64, 56, 56) float32, kernel 2, stride 2 (best of {args.repeat})")
    print(f"  loops        {loop * 1e3:9.3f} ms")
    print(f"  vectorised   {vec * 1e3:9.3f} ms   speed-up vs loops: {loop / vec:7.1f}x")
    print(f"  F.max_pool2d {ref * 1e3:9.3f} ms   speed-up vs loops: {loop / ref:7.1f}x")
    ok = loop / vec >= CLAIMED_SPEEDUP
    print(f"claim: vectorised >= {CLAIMED_SPEEDUP}x faster than loops: {'holds' if ok else 'FAILS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
