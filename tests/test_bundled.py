"""Tests of the bundled scenes model: architecture, weights file and error messages."""

import json

import pytest
import torch
from safetensors.torch import save_file
from timm.data import resolve_data_config

from lab6.bundled import (
    ARCH_KWARGS,
    BUNDLED_PATH,
    METADATA_KEY,
    create_scenes_vit,
    load_bundled_model,
    read_metadata,
    save_bundled,
)
from lab6.evit import apply_evit
from lab6.i18n import WeightsError
from lab6.scenes import CLASS_NAMES, CLASS_NAMES_ZH


@pytest.fixture(scope="module")
def bundled():
    return load_bundled_model()


def test_architecture_matches_deit_layout():
    model = create_scenes_vit(len(CLASS_NAMES))
    assert len(model.blocks) == 12
    assert model.patch_embed.patch_size == (16, 16)
    assert model.patch_embed.grid_size == (14, 14)
    assert model.num_prefix_tokens == 1
    assert model.global_pool == "token"
    assert model.embed_dim == ARCH_KWARGS["embed_dim"]
    assert model.head.out_features == len(CLASS_NAMES)


def test_weights_file_small():
    assert BUNDLED_PATH.is_file()
    assert BUNDLED_PATH.stat().st_size < 5_000_000


def test_bundled_loads_float32_eval(bundled):
    assert not bundled.training
    assert all(p.dtype == torch.float32 for p in bundled.parameters())


def test_bundled_keeps_timm_keys(bundled):
    reference = create_scenes_vit(len(CLASS_NAMES)).state_dict()
    assert list(bundled.state_dict().keys()) == list(reference.keys())
    for key, value in reference.items():
        assert bundled.state_dict()[key].shape == value.shape, key


def test_bundled_data_config(bundled):
    config = resolve_data_config(model=bundled)
    assert config["input_size"] == (3, 224, 224)
    assert config["crop_pct"] == 1.0
    assert tuple(config["mean"]) == (0.5, 0.5, 0.5)
    assert tuple(config["std"]) == (0.25, 0.25, 0.25)
    assert bundled.pretrained_cfg["label_names"] == list(CLASS_NAMES)
    assert bundled.pretrained_cfg["label_names_zh"] == list(CLASS_NAMES_ZH)


def test_bundled_metadata_has_recipe():
    meta = read_metadata()
    assert meta["num_classes"] == len(CLASS_NAMES)
    assert meta["arch_kwargs"]["depth"] == 12
    assert "keep_rate" in meta["recipe"]
    assert meta["recipe"]["fuse"] in (True, False)


def test_lab_schedule_token_counts(bundled):
    model = apply_evit(load_bundled_model(), "lab", fuse=True)
    out = model.forward_evit(torch.zeros(1, 3, 224, 224))
    assert out.logits.shape == (1, len(CLASS_NAMES))
    assert [out.token_counts[i] for i in (3, 6, 9)] == [140, 100, 72]


def test_save_load_round_trip(tmp_path):
    model = create_scenes_vit(len(CLASS_NAMES))
    path = tmp_path / "model.safetensors"
    save_bundled(model, path, recipe={"keep_rate": 0.5, "fuse": True}, arch_kwargs=ARCH_KWARGS)
    loaded = load_bundled_model(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.half().float()), key


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError) as info:
        load_bundled_model(tmp_path / "absent.safetensors")
    assert info.value.key == "bundled.missing"
    assert "absent.safetensors" in str(info.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(WeightsError) as info:
        load_bundled_model(path)
    assert info.value.key == "bundled.corrupt"


def test_truncated_file(tmp_path):
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(BUNDLED_PATH.read_bytes()[:100_000])
    with pytest.raises(WeightsError) as info:
        load_bundled_model(path)
    assert info.value.key == "bundled.corrupt"


def test_missing_metadata(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError) as info:
        load_bundled_model(path)
    assert info.value.key == "bundled.bad_metadata"


def test_wrong_tensors(tmp_path):
    path = tmp_path / "wrong.safetensors"
    meta = read_metadata()
    save_file({"x": torch.zeros(2)}, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(WeightsError) as info:
        load_bundled_model(path)
    assert info.value.key == "bundled.mismatch"
