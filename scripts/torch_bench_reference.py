"""PyTorch measuring the work `kiln bench all` measures, for the side-by-side figures of
BENCHMARKS.md (issue 6): on a CUDA GPU next to `--backend gpu`, or with `--device cpu` on
the CPU next to `--backend cpu`:

- copy: a 256 MiB copy within the device's memory (the bandwidth ceiling, bytes read +
  written);
- matmul: square f32 products 256..4096 with TF32 off (torch.backends.cuda.matmul.
  allow_tf32 = False), the figure kiln's f32 matmul is compared with;
- AdamW: torch.optim.AdamW(fused=True) over 1M, 10M and 100M f32 parameters (the CPU's
  fused kernel where this PyTorch has one, else foreach), as GB/s of
  its seven streams (param, grad, exp_avg, exp_avg_sq read; param, exp_avg, exp_avg_sq
  written) and as a fraction of the copy;
- training steps of kiln's `mlp`, `cnn` and `resnet` presets (the same layers, PyTorch's default
  init, AdamW lr 1e-3, batch 128, random inputs already on the device), eager, images/s.

Each figure is the median of repeated timings after warm-up: CUDA events on the GPU, the
wall clock on the CPU (PyTorch's default threads; --threads N sets them). Prints a table,
and the same rows as JSON lines when given --json.

Usage: python3 scripts/torch_bench_reference.py [--device cuda|cpu] [--threads N] [--json]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


def timed(fn, repeats, warmup=3):
    """Median milliseconds of `fn()` over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def copy_row():
    n = 256 * 1024 * 1024 // 4
    src = torch.rand(n, device=DEVICE)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src), 20)
    return {"op": "copy", "shape": "256 MiB", "ms": ms, "gb_s": 2 * n * 4 / ms / 1e6}


def matmul_rows():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for s in (256, 512, 1024, 2048, 4096):
        a = torch.rand(s, s, device=DEVICE)
        b = torch.rand(s, s, device=DEVICE)
        ms = timed(lambda: torch.matmul(a, b), 20)
        rows.append(
            {"op": "matmul f32 (TF32 off)", "shape": f"{s}^3", "ms": ms,
             "gflop_s": 2 * s**3 / ms / 1e6}
        )
    return rows


def adamw(params):
    """(optimizer, kind): the fused AdamW kernel, or foreach where this PyTorch has no
    fused one for the device (fused CPU AdamW came with PyTorch 2.4)."""
    try:
        return torch.optim.AdamW(params, lr=1e-3, fused=True), "fused"
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=1e-3, foreach=True), "foreach"


def adamw_rows(copy_gb_s):
    rows = []
    for n in (1_000_000, 10_000_000, 100_000_000):
        p = torch.nn.Parameter(torch.rand(n, device=DEVICE))
        p.grad = torch.rand(n, device=DEVICE)
        opt, kind = adamw([p])
        ms = timed(opt.step, 20)
        gb_s = 7 * n * 4 / ms / 1e6
        rows.append(
            {"op": f"AdamW {kind}", "shape": f"{n} params", "ms": ms, "gb_s": gb_s,
             "fraction_of_copy": gb_s / copy_gb_s}
        )
        del p, opt
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return rows


def mlp():
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )


class Residual(nn.Module):
    """kiln's `residual(body..., shortcut=(...))`: body(x) + shortcut(x), the identity
    when there is no shortcut; parameters named `body.j` and `shortcut.j` as in kiln."""

    def __init__(self, body, shortcut=()):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def basic_block(cin, cout, stride):
    body = (
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
    )
    if stride == 1 and cin == cout:
        return Residual(body)
    return Residual(body, (nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))


def resnet():
    """kiln's `resnet` preset (src/nn/mod.rs, PRESET_RESNET)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        basic_block(16, 16, 1), nn.ReLU(), basic_block(16, 32, 2), nn.ReLU(),
        basic_block(32, 64, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


MODELS = {"mlp": mlp, "cnn": cnn, "resnet": resnet}


def step_rows(batch=128):
    torch.backends.cudnn.benchmark = True
    rows = []
    shapes = {"mlp": (batch, 784), "cnn": (batch, 1, 28, 28), "resnet": (batch, 1, 28, 28)}
    for name, make in MODELS.items():
        shape = shapes[name]
        torch.manual_seed(0)
        model = make().to(DEVICE).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        x = torch.rand(*shape, device=DEVICE)
        y = torch.randint(0, 10, (batch,), device=DEVICE)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        ms = timed(step, 50, warmup=10)
        rows.append(
            {"op": f"train step {name}", "shape": f"batch {batch}", "ms": ms,
             "images_s": batch / ms * 1e3}
        )
    return rows


DEVICE = "cuda"


def main():
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--threads", type=int, help="CPU threads with --device cpu (default: PyTorch's)"
    )
    parser.add_argument("--json", action="store_true", help="also print JSON lines")
    args = parser.parse_args()
    DEVICE = args.device
    if args.threads is not None and (args.threads < 1 or DEVICE != "cpu"):
        parser.error("--threads takes a positive count, with --device cpu")
    if DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device (--device cpu measures the CPU)")
        device = torch.cuda.get_device_name(0)
    else:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        device = f"CPU, {torch.get_num_threads()} threads"
    copy = copy_row()
    rows = [copy] + matmul_rows() + adamw_rows(copy["gb_s"]) + step_rows()
    print(f"# PyTorch {torch.__version__} on {device}")
    for r in rows:
        extra = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in r.items() if k not in ("op", "shape", "ms")
        )
        print(f"{r['op']:24s} {r['shape']:16s} {r['ms']:10.4f} ms  {extra}")
    if args.json:
        for r in rows:
            print(json.dumps({"device": device, "torch": torch.__version__, **r}))


if __name__ == "__main__":
    main()
