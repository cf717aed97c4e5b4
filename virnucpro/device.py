"""Where models run and in which precision.

One home for the rule so the ESM-2 and DNABERT-S engines agree: BF16 on GPUs whose
compute capability is at least 8.0 (Ampere and newer have BF16 matrix units), FP32 on
the CPU and on older GPUs, unless the caller asks for something else.
"""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp16", "fp32"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(requested: str = "auto") -> torch.device:
    """`auto` picks the current CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(requested)


def supports_bf16(device: torch.device) -> bool:
    """True where BF16 matrix work runs natively (CUDA compute capability ≥ 8.0)."""
    if device.type != "cuda":
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """Map a precision name to a dtype; `auto` is BF16 where supported, else FP32."""
    if precision == "auto":
        return torch.bfloat16 if supports_bf16(device) else torch.float32
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; use one of auto, bf16, fp16, fp32")
    return _DTYPES[precision]
