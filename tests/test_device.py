"""Tests of lab6.device: the automatic choice, the LAB6_DEVICE override and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lab6.device import DeviceError, pick_device, seed_everything


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("LAB6_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("auto").type == expected


def test_env_selects_cpu(monkeypatch):
    monkeypatch.setenv("LAB6_DEVICE", " CPU ")
    assert pick_device() == torch.device("cpu")


def test_argument_overrides_env(monkeypatch):
    monkeypatch.setenv("LAB6_DEVICE", "not-a-device")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("language", "text"), [("en", "Unknown device 'gpu'"), ("zh-TW", "無法辨識裝置 'gpu'")])
def test_invalid_device(monkeypatch, lang, language, text):
    lang(language)
    monkeypatch.setenv("LAB6_DEVICE", "gpu")
    with pytest.raises(DeviceError) as caught:
        pick_device()
    assert caught.value.key == "device.invalid"
    assert text in str(caught.value)
    assert "LAB6_DEVICE" in str(caught.value)


def test_meta_device_is_invalid():
    with pytest.raises(DeviceError) as caught:
        pick_device("meta")
    assert caught.value.key == "device.invalid"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_missing(lang):
    lang("en")
    with pytest.raises(DeviceError) as caught:
        pick_device("cuda")
    assert caught.value.key == "device.cuda_missing"
    assert "no CUDA GPU" in str(caught.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    count = torch.cuda.device_count()
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError) as caught:
        pick_device(f"cuda:{count}")
    assert caught.value.key == "device.cuda_index"


@pytest.mark.skipif(_mps_available(), reason="this machine has MPS")
def test_mps_missing():
    with pytest.raises(DeviceError) as caught:
        pick_device("mps")
    assert caught.value.key == "device.mps_missing"


def test_seed_everything_repeats():
    seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(4))
    seed_everything(3)
    second = (random.random(), np.random.rand(), torch.rand(4))
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert torch.equal(first[2], second[2])
    seed_everything(4)
    assert not torch.equal(torch.rand(4), first[2])


@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_missing_cuda_names_both_settings(monkeypatch, lang, requested):
    lang("en")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as caught:
        pick_device(requested)
    assert caught.value.key == "device.cuda_missing"
    assert "--device" in str(caught.value)
    assert "LAB6_DEVICE" in str(caught.value)
