"""Benchmark one one-shot task inference: bit-packed masks against the naive float superposition.

FC 784-1024-1024-500 (SupSup's GNu model with 500 outputs), K random masks (density 0.5), one batch of
128 inputs, the superfluous objective. Both paths compute the same ∂G/∂α (checked below).

Memory of a path is its *storage* (the K packed rows, or the K float masks it superposes) plus its
*transient* peak during one inference: the largest total of tensors PyTorch allocated and had not yet
freed during the call, replayed from the profiler's allocation events (``profile_memory=True``). tracemalloc
does not see PyTorch's allocations and the CPU allocator keeps no statistics; process RSS is blurred by
glibc reusing freed memory. Times are medians over repeats, measured without the profiler, with one torch
thread by default (``--threads``).

Usage::

    python benchmarks/bench_inference.py            # K = 250 (about 2.4 GB for the naive masks)
    python benchmarks/bench_inference.py --quick    # K = 25
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from supsup_core.infer.inference import alpha_gradient, infer_task_oneshot
from supsup_core.infer.objectives import Objective
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn.models import ModelConfig, build_model


def _transient_peak(fn) -> int:
    """Peak bytes of PyTorch tensors allocated and still live at some moment during ``fn()``."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:  # +bytes on allocation, -bytes on free
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _measure(fn, repeats: int) -> tuple[float, int]:
    """(median seconds over ``repeats`` calls after one warm-up, transient peak bytes of one call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), _transient_peak(fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-masks", type=int, default=250)
    parser.add_argument("--quick", action="store_true", help="K = 25 instead of 250")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both paths (default 1: on a shared 2-core machine, two threads "
                             "make every op wait on the busier core and the timings erratic)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = 25 if args.quick else args.num_masks
    mb = 1 / 2**20

    generator = torch.Generator().manual_seed(args.seed)
    model = build_model(ModelConfig(name="fc1024", output_size=500, num_tasks=0), generator)
    shapes = {name: tuple(layer.weight.shape) for name, layer in model.layers.named_children()}
    shapes = {f"layers.{name}": shape for name, shape in shapes.items()}
    d = sum(torch.Size(s).numel() for s in shapes.values())
    x = torch.randn(128, 1, 28, 28, generator=generator)
    objective = Objective("superfluous", 10)
    print(f"FC 784-1024-1024-500, d = {d:,} mask entries per task, K = {k} random masks, batch 128, "
          f"objective G, torch threads = {torch.get_num_threads()}")

    start = time.perf_counter()
    packed = PackedMasks.random(shapes, k, generator=generator)
    print(f"built {k} packed masks in {time.perf_counter() - start:.1f} s")

    def packed_cold():
        packed._mean_key = None  # drop the cached superposition: pay for it in this call
        return infer_task_oneshot(model, x, packed, objective)

    p_cold, p_peak = _measure(packed_cold, args.repeats)
    p_warm, p_warm_peak = _measure(lambda: infer_task_oneshot(model, x, packed, objective), args.repeats)
    packed_grad = alpha_gradient(model, x, packed, None, objective).gradient
    packed_storage = packed.nbytes

    start = time.perf_counter()
    floats = packed.unpack()
    build_naive = time.perf_counter() - start
    naive_storage = sum(t.numel() * t.element_size() for t in floats.values())
    n_time, n_peak = _measure(lambda: infer_task_oneshot(model, x, floats, objective), args.repeats)
    naive_grad = alpha_gradient(model, x, floats, None, objective).gradient
    diff = float((packed_grad - naive_grad).abs().max() / naive_grad.abs().max())
    same = int(torch.argmax(-packed_grad)) == int(torch.argmax(-naive_grad))

    rows = [
        ("packed (superposition recomputed)", p_cold, packed_storage, p_peak),
        ("packed (superposition cached)", p_warm, packed_storage, p_warm_peak),
        ("naive float superposition", n_time, naive_storage, n_peak),
    ]
    print(f"{'path':36s} {'time/inference':>15s} {'storage':>12s} {'transient':>12s} {'total':>12s}")
    for name, seconds, storage, peak in rows:
        print(f"{name:36s} {seconds:13.3f} s {storage * mb:9.1f} MB {peak * mb:9.1f} MB {(storage + peak) * mb:9.1f} MB")
    print(f"(unpacking the naive float masks took {build_naive:.1f} s, not counted)")
    print(f"memory ratio naive/packed (storage + transient): {(naive_storage + n_peak) / (packed_storage + p_peak):.1f}x")
    print(f"time ratio naive/packed: {n_time / p_cold:.2f}x (superposition recomputed), {n_time / p_warm:.2f}x (cached)")
    print(f"same inferred task: {same}; max |packed - naive| / max |naive| gradient = {diff:.2e}")


if __name__ == "__main__":
    main()
