"""Shared measurements: the machine's float32 matmul rate and a model's forward FLOPs."""

from __future__ import annotations

import time


def matmul_gflops(n: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained float32 GEMM rate (GFLOP/s) with torch's current thread count."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def forward_flops(model, size: tuple[int, int]) -> float:
    """FLOPs of one forward pass on one image (torch's FlopCounterMode: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=torch.randn(1, 3, *size))
    return float(counter.get_total_flops())
