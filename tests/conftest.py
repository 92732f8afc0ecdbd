"""Test-session setup: without a GPU, Triton kernels run under Triton's CPU interpreter, so the fused
kernels are checked on every machine. The variable must be set before ``triton`` is first imported."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
