"""Time the keep-rate explorer's update per slider change and the keep-rate sweep on this machine.

Usage: python benchmarks/explorer_speed.py [--changes 15] [--scenes 32] [--threads 2]

Prints the median and the slowest update after a slider change. The value is set from Python,
so the browser's rendering is not included. Then prints the sweep's wall time on the first N
held-out scenes with the default 13 keep rates, scaled to the whole held-out set as an estimate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=15, help="slider changes to time")
    parser.add_argument("--scenes", type=int, default=32, help="held-out scenes in the sweep")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lab6.bundled import load_bundled_model
    from lab6.explorer import explore
    from lab6.scenes import load_heldout
    from lab6.sweep import sweep_keep_rates

    started = time.perf_counter()
    panel = explore()
    print(f"panel opened in {time.perf_counter() - started:.2f} s (model, held-out scenes, first update)")

    values = [0.5, 0.6, 0.4, 0.65, 0.55, 0.45, 0.75, 0.35, 0.8, 0.3]
    sliders = [3, 6, 9]
    times = []
    for i in range(args.changes):
        slider = panel.rate_sliders[sliders[i % len(sliders)]]
        started = time.perf_counter()
        slider.value = values[i % len(values)]
        times.append(time.perf_counter() - started)
        if panel.state is None or panel.message.layout.display != "none":
            raise SystemExit(f"update failed: {panel.message.value}")
    times.sort()
    print(
        f"update per slider change ({args.changes} changes, {args.threads} threads): "
        f"median {statistics.median(times) * 1000:.0f} ms, slowest {times[-1] * 1000:.0f} ms"
    )

    scenes = load_heldout()
    model = load_bundled_model()
    subset = scenes[: args.scenes]
    result = sweep_keep_rates(model, subset, progress=False)
    per_scene = result.seconds / len(subset)
    print(
        f"sweep of {len(result.rates)} keep rates on {len(subset)} scenes: {result.seconds:.1f} s; "
        f"scaled to all {len(scenes)} held-out scenes: about {per_scene * len(scenes):.0f} s (estimate)"
    )
    print(result.format_table())


if __name__ == "__main__":
    main()
