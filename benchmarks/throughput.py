"""Measure the inference throughput of DeiT-S with and without EViT pruning.

Prints, for plain timm DeiT-S (random weights) and for the same model wrapped with
:func:`lab6.evit.apply_evit` at keep rate 1.0 and with the lab's schedule (fusion on and
off): images per second, the ratio to plain timm, and the multiply-accumulates (MACs) per
image from the analytic formula and from ``torch.utils.flop_counter``, with their ratios.

Run from the repository root::

    python benchmarks/throughput.py --batch 32 --device cpu

Each variant gets ``--warmup`` untimed forward passes. Then ``--runs`` rounds each time
every variant once for ``--iters`` forward passes, under ``torch.inference_mode``. The
printed throughput is a variant's median over the rounds, and its ratio the median of its
per-round ratios to plain timm, so load changes during the run cancel out.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import timm
import torch
from timm.models.vision_transformer import VisionTransformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lab6.evit import apply_evit  # noqa: E402
from lab6.flops import count_flops  # noqa: E402
from lab6.schedule import LAB_SCHEDULE, format_schedule, num_kept, parse_keep_rate  # noqa: E402


def analytic_macs(model: VisionTransformer, schedule: Optional[tuple[float, ...]], fuse: bool = True) -> int:
    """Return the multiply-accumulates of one image through ``model`` under ``schedule``.

    Counts the patch embedding, every block's linear layers and attention products, and the
    head. A pruning block runs attention on its N input tokens, plus one CLS attention row
    (N x C MACs) for ranking, and its MLP on the pruned sequence. ``schedule=None`` is plain
    timm. Norms, softmax, GELU, ``topk`` and the fused token's weighted sum are left out.
    """
    channels = model.embed_dim
    embed = model.patch_embed
    patches = embed.num_patches
    kernel = embed.proj.in_channels * embed.proj.kernel_size[0] * embed.proj.kernel_size[1]
    hidden = model.blocks[0].mlp.fc1.out_features
    macs = patches * kernel * channels  # patch embedding

    tokens = patches + model.num_prefix_tokens
    rates = schedule if schedule is not None else (1.0,) * len(model.blocks)
    for rate in rates:
        attention = tokens * channels * 3 * channels  # qkv
        attention += 2 * tokens * tokens * channels  # q k^T and attn v, summed over heads
        attention += tokens * channels * channels  # proj
        kept = num_kept(rate, tokens)
        if schedule is not None and kept < tokens - 1:
            attention += tokens * channels  # the CLS row recomputed for ranking
            tokens = 1 + kept + (1 if fuse else 0)
        macs += attention + 2 * tokens * channels * hidden  # MLP on the (pruned) sequence
    return macs + channels * model.num_classes  # head on the CLS token


def measure(models: list[torch.nn.Module], images: torch.Tensor, args: argparse.Namespace) -> list[list[float]]:
    """Return images per second of each model in each of ``args.runs`` rounds.

    Every round times each model once, one after another, so a change in machine load
    during the benchmark affects all variants of a round alike and their ratios stay fair.
    """
    device = images.device
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    )
    rates: list[list[float]] = [[] for _ in models]
    with torch.inference_mode(), autocast:
        for model in models:
            for _ in range(args.warmup):
                model(images)
        for _ in range(args.runs):
            for model, model_rates in zip(models, rates):
                synchronize(device)
                start = time.perf_counter()
                for _ in range(args.iters):
                    model(images)
                synchronize(device)
                model_rates.append(images.shape[0] * args.iters / (time.perf_counter() - start))
    return rates


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--iters", type=int, default=10, help="forward passes per variant in each round (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds, each timing every variant once; medians are printed (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward passes per variant (default 2)")
    parser.add_argument("--bf16", action="store_true", help="run under torch.autocast with bfloat16")
    parser.add_argument("--model", default="deit_small_patch16_224", help="timm model name (default DeiT-S)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    for name in ("batch", "iters", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    plain = timm.create_model(args.model, pretrained=False).eval()
    lab = parse_keep_rate(LAB_SCHEDULE, depth=len(plain.blocks))
    variants = [
        ("timm", plain, None, True),
        ("EViT keep 1.0", apply_evit(copy.deepcopy(plain), 1.0), (1.0,) * len(plain.blocks), True),
        (f"EViT {format_schedule(lab)}, fusion", apply_evit(copy.deepcopy(plain), lab, fuse=True), lab, True),
        (f"EViT {format_schedule(lab)}, no fusion", apply_evit(copy.deepcopy(plain), lab, fuse=False), lab, False),
    ]

    print(
        f"{args.model} (random weights), batch {args.batch}, device {device}, "
        f"{'bfloat16 autocast' if args.bf16 else 'float32'}, {torch.get_num_threads()} CPU threads, "
        f"torch {torch.__version__}, timm {timm.__version__}"
    )
    print(f"median of {args.runs} interleaved rounds of {args.iters} forward passes, after {args.warmup} warm-up passes")
    print()
    header = f"{'variant':<28} {'images/s':>9} {'vs timm':>8} {'GMACs':>7} {'vs timm':>8} {'GMACs*':>7} {'vs timm':>8}"
    print(header)
    print("-" * len(header))

    images = torch.randn(args.batch, 3, *plain.patch_embed.img_size, device=device)
    # count_flops wraps a plain model with EViT, so plain timm is counted on a copy.
    counted = [count_flops(model if schedule is not None else copy.deepcopy(model)) / 2 for _, model, schedule, _ in variants]
    macs = [analytic_macs(model, schedule, fuse) for _, model, schedule, fuse in variants]
    rates = measure([model.to(device) for _, model, _, _ in variants], images, args)
    for index, (name, _, _, _) in enumerate(variants):
        speed = statistics.median(rates[index])
        # The ratio is the median of per-round ratios, each taken against timm in the same round.
        ratio = statistics.median(r / base for r, base in zip(rates[index], rates[0]))
        print(
            f"{name:<28} {speed:>9.1f} {ratio:>8.3f} {macs[index] / 1e9:>7.3f} {macs[index] / macs[0]:>8.3f} "
            f"{counted[index] / 1e9:>7.3f} {counted[index] / counted[0]:>8.3f}"
        )
    print()
    print("GMACs: analytic formula (benchmarks/throughput.py, analytic_macs).")
    print("GMACs*: torch.utils.flop_counter through lab6.flops.count_flops, halved (FLOPs count a MAC as 2).")
    print("The 'EViT keep 1.0' row is the wrapper's overhead and should read about 1.0.")


if __name__ == "__main__":
    main()
