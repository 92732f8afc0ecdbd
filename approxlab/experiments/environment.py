"""Where a number was measured: device, library versions, threads (recorded beside every timing)."""

from __future__ import annotations

import os
import platform

import torch


def device_name(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def describe(device: str | torch.device = "cpu") -> dict:
    """A flat dict suitable for CSV columns."""
    device = torch.device(device)
    info = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def banner(device: str | torch.device = "cpu") -> str:
    return " | ".join(f"{k}={v}" for k, v in describe(device).items())
