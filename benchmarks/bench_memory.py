"""Benchmark of Hopfield memories: store and recall throughput against plain torch matmuls, and memory at d = 10⁶.

Run ``python benchmarks/bench_memory.py`` (about a minute on 2 CPU cores) or ``--quick`` for a smoke run.
Every ratio is measured in the same run: memory time / time of a plain torch matmul of the same shape.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Callable

import torch

from hopfield_masks import flip_bits, generate_patterns, make_memory


def best_time(func: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock runs of ``func``, in seconds (after one warm-up run)."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def proc_status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status in MB: "VmHWM" (peak RSS) or "VmRSS"."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def throughput(dim: int, count: int, probes: int, repeats: int) -> None:
    """Store and field throughput of dense and implicit memories against matmuls of the same shapes."""
    generator = torch.Generator().manual_seed(0)
    patterns = generate_patterns(count, dim, generator=generator)
    states = generate_patterns(probes, dim, generator=generator)
    noisy = flip_bits(patterns[torch.arange(probes) % count], 0.1, generator)  # recall probes: 10% of bits flipped
    dense_matrix = torch.randn(dim, dim)
    float_patterns = torch.randn(count, dim)
    print(f"\n== throughput: d = {dim}, K = {count} stored, n = {probes} probes, torch threads = {torch.get_num_threads()}")
    print(f"{'operation':44s} {'memory s':>10s} {'matmul s':>10s} {'ratio':>7s}  reference matmul")
    rows = [
        ("store K, dense hebbian", lambda: make_memory("hebbian", dim, "dense").store(patterns),
         lambda: patterns.T @ patterns, "(d,K)@(K,d)"),
        ("store K, dense storkey (sequential)", lambda: make_memory("storkey", dim, "dense").store(patterns),
         lambda: patterns.T @ patterns, "(d,K)@(K,d)"),
        ("store K, dense pseudoinverse", lambda: make_memory("pseudoinverse", dim, "dense").store(patterns),
         lambda: patterns.T @ patterns, "(d,K)@(K,d)"),
        ("store K, implicit hebbian", lambda: make_memory("hebbian", dim, "implicit").store(patterns),
         lambda: patterns @ patterns.T, "(K,d)@(d,K)"),
        ("store K, implicit storkey_reference", lambda: make_memory("storkey_reference", dim, "implicit").store(patterns),
         lambda: patterns @ patterns.T, "(K,d)@(d,K)"),
    ]
    dense = make_memory("hebbian", dim, "dense").store(patterns)
    implicit = make_memory("storkey_reference", dim, "implicit").store(patterns)
    modern = make_memory("modern", dim, "implicit").store(patterns)
    rows += [
        ("field of n probes, dense", lambda: dense.field(states), lambda: states @ dense_matrix, "(n,d)@(d,d)"),
        ("field of n probes, implicit", lambda: implicit.field(states),
         lambda: (states @ float_patterns.T) @ float_patterns, "(n,d)@(d,K)@(K,d)"),
        ("field of n probes, modern", lambda: modern.field(states),
         lambda: (states @ float_patterns.T) @ float_patterns, "(n,d)@(d,K)@(K,d)"),
    ]
    for name, memory in (("dense", dense), ("implicit", implicit)):
        steps = int(memory.recall(noisy).steps.max()) + 1  # updates incl. the one that finds the fixed point
        reference = rows[-3 if name == "dense" else -2]
        rows.append((f"sync recall, 10% noise, {name} ({steps} updates)", lambda m=memory: m.recall(noisy),
                     lambda op=reference[2]: [op() for _ in range(steps)], f"{steps} x {reference[3]}"))
    for name, memory_op, matmul_op, shape in rows:
        memory_time, matmul_time = best_time(memory_op, repeats), best_time(matmul_op, repeats)
        print(f"{name:44s} {memory_time:10.4f} {matmul_time:10.4f} {memory_time / matmul_time:7.1f}  {shape}")


def large_implicit(dim: int, count: int, batch: int) -> None:
    """Memory and time of an implicit memory at large d, stored ``batch`` patterns at a time."""
    generator = torch.Generator().manual_seed(1)
    baseline = proc_status_mb("VmRSS")
    reset_peak_rss()
    for rule in ("storkey_reference",):
        memory = make_memory(rule, dim, "implicit")
        start = time.perf_counter()
        for _ in range(count // batch):
            bits = torch.randint(0, 2, (batch, dim), dtype=torch.uint8, generator=generator)
            memory.store(bits.float().mul_(2).sub_(1))  # iid ±1 bits: the cheapest input to hold
        store_time = time.perf_counter() - start
        probe = torch.randint(0, 2, (1, dim), generator=generator).float().mul_(2).sub_(1)
        start = time.perf_counter()
        memory.field(probe)
        field_time = time.perf_counter() - start
        print(f"{rule:18s} state {memory.nbytes / 1e6:7.1f} MB (packed patterns {memory.packed_patterns.numel() / 1e6:.1f} MB), "
              f"store {store_time:5.1f} s, field of one probe {field_time:5.2f} s")
    peak = proc_status_mb("VmHWM")
    print(f"peak RSS of a fresh process during the stores and the field: {peak - baseline:.0f} MB above its "
          f"{baseline:.0f} MB baseline (torch imported); this includes the caller's {batch}-pattern float32 input "
          f"batch ({batch * dim * 4 / 1e6:.0f} MB) and the chunked temporaries")
    print(f"a dense d×d float32 memory here would be {dim * dim * 4 / 1e9:,.0f} GB")


def large_implicit_in_fresh_process(dim: int, count: int, batch: int) -> None:
    """Run :func:`large_implicit` in a fresh interpreter so its peak memory is not hidden by earlier work."""
    print(f"\n== implicit memory at d = {dim:,}, K = {count} (fresh process)", flush=True)
    process = multiprocessing.get_context("spawn").Process(target=large_implicit, args=(dim, count, batch))
    process.start()
    process.join()


def bytes_per_mask(dim: int, counts: tuple[int, ...]) -> None:
    """Bytes per stored mask for each backend next to packed masks (d/8 bytes per mask)."""
    print(f"\n== bytes per stored mask at d = {dim} (packed mask alone: {dim / 8:.0f} B)")
    print(f"{'K':>6s} {'dense':>12s} {'implicit(hebb)':>15s} {'implicit(pinv)':>15s} {'modern':>10s} {'packed K*d/8':>13s}")
    generator = torch.Generator().manual_seed(2)
    for count in counts:
        patterns = generate_patterns(count, dim, generator=generator)
        sizes = [make_memory(rule, dim, backend).store(patterns).nbytes / count for rule, backend in
                 (("hebbian", "dense"), ("hebbian", "implicit"), ("pseudoinverse", "implicit"), ("modern", "implicit"))]
        print(f"{count:6d} {sizes[0]:12.0f} {sizes[1]:15.0f} {sizes[2]:15.0f} {sizes[3]:10.0f} {dim / 8:13.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes (seconds), for CI.")
    args = parser.parse_args()
    if args.quick:
        throughput(dim=512, count=64, probes=64, repeats=2)
        large_implicit_in_fresh_process(dim=100_000, count=20, batch=5)
        bytes_per_mask(512, (5, 50))
    else:
        throughput(dim=2048, count=200, probes=256, repeats=3)
        large_implicit_in_fresh_process(dim=1_000_000, count=100, batch=5)
        bytes_per_mask(2048, (5, 20, 100, 500))


if __name__ == "__main__":
    main()
