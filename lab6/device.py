"""Device selection for lab6, and seeds for repeatable runs.

:func:`pick_device` prefers CUDA, then Apple's MPS, then the CPU. The environment variable
``LAB6_DEVICE`` overrides the choice with ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
(``auto`` or an empty value keeps the automatic choice).
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from lab6.i18n import Lab6Error

__all__ = ["DeviceError", "pick_device", "seed_everything", "DEVICE_ENV"]

_logger = logging.getLogger(__name__)

DEVICE_ENV = "LAB6_DEVICE"


class DeviceError(Lab6Error):
    """A requested device that is invalid or not available on this machine."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _requested_device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError("device.invalid", value=text, env=DEVICE_ENV) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device.cuda_missing", value=text, env=DEVICE_ENV)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError("device.cuda_index", value=text, count=count, env=DEVICE_ENV)
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError("device.mps_missing", value=text, env=DEVICE_ENV)
        return device
    raise DeviceError("device.invalid", value=text, env=DEVICE_ENV)


def pick_device(requested: str | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        requested: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``. When None, the
            ``LAB6_DEVICE`` environment variable is read, and an unset or empty variable
            means ``auto``: CUDA if available, then MPS, then the CPU.

    Raises:
        DeviceError: the request names an unknown device or one this machine lacks.
    """
    text = os.environ.get(DEVICE_ENV, "") if requested is None else requested
    text = text.strip().lower()
    if text not in ("", "auto"):
        device = _requested_device(text)
        _logger.info("using device %s, as requested", device)
        return device
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif _mps_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    _logger.info("using device %s", device)
    return device


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's random generators, and make cuDNN deterministic.

    Runs on the CPU then repeat exactly. On CUDA some kernels stay nondeterministic,
    because this does not call ``torch.use_deterministic_algorithms``, which would make
    those kernels raise instead.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
