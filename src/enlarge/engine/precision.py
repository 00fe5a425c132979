"""Reduced precision: bf16 autocast, only where the hardware runs bf16 natively and the model tolerates it.

Whether a model tolerates bf16 is measured once, by `enlarge calibrate`, and recorded in its card as
`default_precision`; whether this machine runs bf16 natively is detected here, once per process. A model whose
card says bf16 runs in fp32 on a CPU without native bf16 (autocast would emulate it, slower and no better).
"""

from __future__ import annotations

import contextlib
import functools

import torch

from enlarge.errors import EnlargeError, ModelError

FP32 = "fp32"
BF16 = "bf16"
PRECISIONS = (FP32, BF16)
# CPU features (names as `torch.cpu.get_capabilities()` reports them) that execute bf16 dot products natively.
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16")
PROBE_SIZE = 8  # side of the probe matrices
PROBE_TOL = 1e-2  # relative error a bf16 product of small integers must stay within (they are exact in bf16)


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for reduced precision; fp32 runs as is."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == BF16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_features() -> dict[str, object]:
    """The CPU's feature flags as PyTorch sees them (empty where this PyTorch cannot tell)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    return dict(get()) if get is not None else {}


@functools.cache
def bf16_supported(device_type: str = "cpu") -> bool:
    """Whether bf16 autocast runs natively and correctly on `device_type`; decided once per process.

    CPU: a native bf16 instruction set (AVX512-BF16 or AMX-BF16), PyTorch's AVX-512 kernels, and a tiny
    autocast matrix product that comes back in bf16 with the right values. CUDA: the device says so.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    features = cpu_features()
    if not any(features.get(name) for name in NATIVE_BF16_FEATURES):
        return False
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    return _probe_bf16_matmul()


def _probe_bf16_matmul() -> bool:
    """A small autocast product of integer matrices (exact in bf16): bf16 out, and equal to the fp32 one."""
    a = torch.arange(PROBE_SIZE * PROBE_SIZE, dtype=torch.float32).view(PROBE_SIZE, PROBE_SIZE) % 7
    expected = a @ a.T
    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            got = a @ a.T
    except RuntimeError:
        return False
    error = (got.float() - expected).abs().max() / expected.abs().max()
    return got.dtype == torch.bfloat16 and bool(error <= PROBE_TOL)


def resolve_precision(requested: str | None, default: str, device: torch.device | str = "cpu") -> str:
    """The precision to run: the user's explicit choice, else the model card's default.

    An explicit `bf16` where the device lacks native bf16 is an error; a card default of `bf16` falls back to
    fp32 there, silently, since the card describes the model and not the machine.
    """
    device_type = torch.device(device).type
    if requested is not None:
        if requested not in PRECISIONS:
            raise EnlargeError(f"unknown precision {requested!r}; use one of {', '.join(PRECISIONS)}")
        if requested == BF16 and not bf16_supported(device_type):
            raise EnlargeError(
                f"this {device_type} has no native bf16 support (needs AVX512-BF16 or AMX on a CPU); use fp32 precision",
                setting="precision",
            )
        return requested
    if default not in PRECISIONS:
        raise ModelError(f"model card default_precision {default!r} is not one of {', '.join(PRECISIONS)}")
    return default if default == FP32 or bf16_supported(device_type) else FP32

