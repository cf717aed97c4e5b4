import pytest
import torch

from virnucpro.models.device import resolve_device, resolve_dtype, supports_bf16


def test_cpu_defaults_to_fp32():
    cpu = torch.device("cpu")
    assert not supports_bf16(cpu)
    assert resolve_dtype("auto", cpu) == torch.float32


def test_explicit_precision_is_honoured():
    cpu = torch.device("cpu")
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("fp32", cpu) == torch.float32


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_auto_device_without_cuda_is_cpu():
    if torch.cuda.is_available():
        pytest.skip("machine has a GPU")
    assert resolve_device("auto").type == "cpu"
