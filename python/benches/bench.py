"""Timings of the Python package beside the Rust benches (README, "Python"):

- `dtss` on a 4×240×240×155 phantom case (what `cargo bench -p dsma-dtss` times in Rust: the same
  case, the same parameters, a new seed per call), and
- the calling overhead of `dice` on a 4×4×4 mask.

Run with a release build of the package installed: `python python/benches/bench.py`.
"""

import statistics
import time
import timeit

import numpy as np

import dsma


def dtss_seconds(calls):
    case = dsma.phantom(size=[240, 240, 155], seed=0, id="bench")
    image, label = case["image"], case["label"]
    times = []
    for seed in range(1, calls + 1):
        start = time.perf_counter()
        dsma.dtss(image, label, seed=seed)
        times.append(time.perf_counter() - start)
    return times


def dice_microseconds(loops):
    a = np.zeros((4, 4, 4), bool)
    a[1, 1, 1] = True
    b = a.copy()
    best = min(timeit.repeat(lambda: dsma.dice(a, b), number=loops, repeat=5))
    return best / loops * 1e6


if __name__ == "__main__":
    t = dtss_seconds(20)
    print(f"dtss 4x240x240x155, 20 seeds: mean {statistics.mean(t):.3f} s, median {statistics.median(t):.3f} s, "
          f"min {min(t):.3f} s")
    print(f"dice 4x4x4 bool: {dice_microseconds(20000):.2f} us per call (best of 5 x 20000)")
