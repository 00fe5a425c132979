"""Devices: the torch device a user names (`cpu`, `cuda`, `cuda:N`, `mps`), checked to be present here."""

from __future__ import annotations

import torch

from enlarge.errors import EnlargeError

DEVICES = ("cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """`cpu`, or `cuda` / `mps` when asked for and present; EnlargeError otherwise."""
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise EnlargeError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    present = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not present[kind]:
        raise EnlargeError(f"device {name!r} is not available on this machine (PyTorch sees no such device); use cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise EnlargeError(f"invalid device {name!r}; use cpu, cuda, cuda:N or mps") from None
