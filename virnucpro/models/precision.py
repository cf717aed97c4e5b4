"""Precision names and the BF16 rule, without torch: the CLI, the config and the GPU
monitor read them before (or without) loading a model.

BF16 runs natively on GPUs whose compute capability is at least 8.0 (Ampere and newer
have BF16 matrix units); `auto` means BF16 there and FP32 everywhere else.
"""

from __future__ import annotations

from typing import Literal

Precision = Literal["auto", "bf16", "fp16", "fp32"]
PRECISIONS: tuple[Precision, ...] = ("auto", "bf16", "fp16", "fp32")

BF16_MIN_COMPUTE_CAPABILITY = (8, 0)


def bf16_capable(compute_capability: tuple[int, int]) -> bool:
    """True where BF16 matrix work runs natively."""
    return tuple(compute_capability) >= BF16_MIN_COMPUTE_CAPABILITY


def resolved_precision(precision: Precision, compute_capability: tuple[int, int] | None) -> str:
    """The precision a run really uses: `auto` becomes bf16 or fp32 for the device
    (`compute_capability` None: the CPU). Results are fingerprinted by this, never by
    the word `auto`, so CPU FP32 results are not reused by a BF16 GPU run."""
    if precision != "auto":
        return precision
    return "bf16" if compute_capability and bf16_capable(compute_capability) else "fp32"
