"""Where models run and in which torch dtype, by the rule in `precision`, so the ESM-2
and DNABERT-S engines agree."""

from __future__ import annotations

import torch

from virnucpro.models.precision import PRECISIONS, Precision, bf16_capable, resolved_precision

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
    return bf16_capable(torch.cuda.get_device_capability(device))


def resolve_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """Map a precision name to a dtype; `auto` is BF16 where supported, else FP32."""
    if precision == "auto":
        return torch.bfloat16 if supports_bf16(device) else torch.float32
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return _DTYPES[precision]


def resolved_precision_of(precision: Precision, device: torch.device) -> str:
    """The precision name a run on `device` really uses (see `precision.resolved_precision`)."""
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return resolved_precision(precision, capability)
