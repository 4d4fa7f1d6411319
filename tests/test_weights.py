"""Tests of lab6.weights: every weights source and every broken checkpoint, with no network."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from lab6.i18n import WeightsError
from lab6.weights import BUNDLED, build_architecture, find_cached_weights, load_model, read_state_dict

TINY = "deit_tiny_patch16_224"
TINY_HUB_REPO = "models--timm--deit_tiny_patch16_224.fb_in1k"


class NotATensor:
    """A class that weights_only loading must reject."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Cut the Hugging Face Hub off and point its cache at an empty folder."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return home


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model(TINY, pretrained=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_pth_bare_state_dict(tmp_path, tiny_state):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_state, path)
    model, info = load_model(TINY, path)
    assert_same_weights(model, tiny_state)
    assert not model.training
    assert info.source == "checkpoint"
    assert info.architecture == TINY
    assert info.location == str(path)
    assert info.num_classes == 1000
    assert info.dataset == "imagenet-1k"
    assert info.class_names[0] == "tench"
    assert info.class_names[207] == "golden retriever"


def test_evit_release_format(tmp_path, tiny_state):
    """EViT and DeiT save {'model': ..., 'epoch': ..., 'args': Namespace}; weights_only must accept it."""
    path = tmp_path / "evit.pth"
    torch.save({"model": tiny_state, "epoch": 299, "args": argparse.Namespace(lr=5e-4, model="deit_small")}, path)
    model, info = load_model(TINY, path)
    assert_same_weights(model, tiny_state)
    assert read_state_dict(path)[1] == "model"


def test_state_dict_key_and_ddp_prefix(tmp_path, tiny_state):
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_state.items()}}, path)
    state, nested = read_state_dict(path)
    assert nested == "state_dict"
    assert set(state) == set(tiny_state)
    model, _ = load_model(TINY, path)
    assert_same_weights(model, tiny_state)


def test_safetensors(tmp_path, tiny_state):
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(path))
    model, info = load_model(TINY, path)
    assert_same_weights(model, tiny_state)
    assert info.source == "checkpoint"


def test_safetensors_detected_by_header(tmp_path, tiny_state):
    path = tmp_path / "renamed.pth"
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(path))
    model, _ = load_model(TINY, path)
    assert_same_weights(model, tiny_state)


def test_other_head_size(tmp_path):
    torch.manual_seed(1)
    state = timm.create_model(TINY, pretrained=False, num_classes=10).state_dict()
    path = tmp_path / "ten.pth"
    torch.save(state, path)
    model, info = load_model(TINY, path)
    assert model.num_classes == 10
    assert info.num_classes == 10
    assert info.dataset == "unknown"
    assert info.class_names[3] == "class 3"


def test_default_checkpoint_architecture_is_deit_small(tmp_path, tiny_state, lang):
    lang("en")
    path = tmp_path / "tiny.pth"
    torch.save(tiny_state, path)
    with pytest.raises(WeightsError) as caught:
        load_model(checkpoint=path)
    error = caught.value
    assert error.key == "weights.wrong_architecture"
    assert error.values["name"] == "deit_small_patch16_224"
    # Every tensor but head.bias ([1000] in both) is 192 wide instead of 384.
    assert error.values["mismatched_count"] == len(tiny_state) - 1
    message = str(error)
    assert "width 192, 12 blocks" in message
    assert "width 384, 12 blocks" in message
    assert "cls_token (1, 1, 192) vs (1, 1, 384)" in message
    assert "--model NAME" in message


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_missing_and_unexpected_keys(tmp_path, tiny_state, lang, language):
    lang(language)
    state = dict(tiny_state)
    del state["head.weight"], state["head.bias"], state["norm.weight"]
    state["blocks.12.attn.qkv.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    error = caught.value
    assert error.key == "weights.wrong_architecture"
    assert error.values["missing_count"] == 3
    assert error.values["unexpected_count"] == 1
    assert error.values["mismatched_count"] == 0
    message = str(error)
    assert "head.weight" in message
    assert "blocks.12.attn.qkv.weight" in message
    if language == "en":
        assert "3 parameters missing" in message
        assert "1 unexpected parameters" in message
        assert "another shape" not in message
    else:
        assert "缺少 3 個參數" in message
        assert "多出 1 個參數" in message
        assert "形狀不符" not in message


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_checkpoint(tmp_path, tiny_state, lang, suffix):
    lang("en")
    full = tmp_path / f"full{suffix}"
    if suffix == ".pth":
        torch.save(tiny_state, full)
    else:
        save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(full))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, cut)
    assert caught.value.key == "weights.corrupt"
    assert "damaged, truncated" in str(caught.value)
    assert str(cut) in str(caught.value)


def test_garbage_file(tmp_path, lang):
    lang("zh-TW")
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.corrupt"
    assert "無法讀取權重檔" in str(caught.value)


def test_empty_file(tmp_path, lang):
    lang("en")
    path = tmp_path / "empty.pth"
    path.touch()
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.empty_file"
    assert "0 bytes" in str(caught.value)


def test_missing_file_and_folder(tmp_path, lang):
    lang("en")
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, tmp_path / "absent.pth")
    assert caught.value.key == "weights.file_missing"
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, tmp_path)
    assert caught.value.key == "weights.is_directory"


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_pickle_rejected_by_weights_only(tmp_path, tiny_state, lang, language):
    lang(language)
    path = tmp_path / "unsafe.pth"
    torch.save({"model": tiny_state, "extra": NotATensor()}, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.unsafe_pickle"
    message = str(caught.value)
    assert "weights_only" in message
    assert "torch.save(torch.load(" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("content", [[1, 2, 3], {"epoch": 3, "lr": 0.1}])
def test_file_without_state_dict(tmp_path, lang, content):
    lang("en")
    path = tmp_path / "odd.pth"
    torch.save(content, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.not_state_dict"


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_timm_weights_offline_and_uncached(lang, language, offline_hub):
    lang(language)
    start = time.perf_counter()
    with pytest.raises(WeightsError) as caught:
        load_model("deit_small_patch16_224")
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"the offline check took {elapsed:.1f} s; it must not wait on the network"
    error = caught.value
    assert error.key == "weights.not_cached"
    message = str(error)
    assert "timm/deit_small_patch16_224.fb_in1k" in message
    assert "HF_HUB_OFFLINE" in message
    assert "--checkpoint" in message
    assert "--model bundled" in message
    assert str(offline_hub / "hub") in message


def test_timm_weights_from_hub_cache(offline_hub, tiny_state):
    """A file in the Hugging Face cache layout is found and loaded without any network."""
    snapshot = offline_hub / "hub" / TINY_HUB_REPO / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tiny_state.items()}, str(snapshot / "model.safetensors"))
    refs = offline_hub / "hub" / TINY_HUB_REPO / "refs"
    refs.mkdir()
    (refs / "main").write_text("0123abcd")

    assert find_cached_weights(TINY) == snapshot / "model.safetensors"
    model, info = load_model(TINY)
    assert_same_weights(model, tiny_state)
    assert info.source == "timm"
    assert info.location == str(snapshot / "model.safetensors")
    assert info.class_names[1] == "goldfish"


def test_timm_weights_from_torch_hub_cache(tmp_path, tiny_state):
    folder = tmp_path / "torch_home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"model": tiny_state}, folder / "deit_tiny_patch16_224-a1311bcf.pth")
    model, info = load_model(TINY)
    assert_same_weights(model, tiny_state)
    assert info.location.endswith("deit_tiny_patch16_224-a1311bcf.pth")


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_unknown_model_name(lang, language):
    lang(language)
    with pytest.raises(WeightsError) as caught:
        load_model("deit_smal_patch16_224")
    assert caught.value.key == "weights.unknown_model"
    assert "deit_small_patch16_224" in caught.value.values["suggestions"]
    assert "deit_smal_patch16_224" in str(caught.value)


def test_model_without_pretrained_weights(lang):
    lang("en")
    with pytest.raises(WeightsError) as caught:
        load_model("vit_base_patch16_18x2_224")
    assert caught.value.key == "weights.no_pretrained"


def test_bundled_architecture_from_checkpoint(tmp_path):
    from lab6.bundled import create_scenes_vit
    from lab6.scenes import CLASS_NAMES

    torch.manual_seed(2)
    state = create_scenes_vit().state_dict()
    path = tmp_path / "scenes.safetensors"
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(path))
    model, info = load_model(BUNDLED, path)
    assert info.dataset == "scenes"
    assert info.class_names == tuple(CLASS_NAMES)
    assert info.source == "checkpoint"
    assert torch.allclose(model.state_dict()["cls_token"], state["cls_token"].half().float())
    assert model.state_dict()["cls_token"].dtype == torch.float32


def test_class_label_language(tmp_path, lang):
    from lab6.bundled import create_scenes_vit

    path = tmp_path / "scenes.pth"
    torch.save(create_scenes_vit().state_dict(), path)
    _, info = load_model(BUNDLED, path)
    lang("zh-TW")
    assert info.class_label(0) == "條紋 (stripes)"
    lang("en")
    assert info.class_label(0) == "stripes"


def test_bundled_default():
    from lab6.bundled import BUNDLED_PATH

    if not BUNDLED_PATH.is_file():
        pytest.skip(f"bundled weights {BUNDLED_PATH} not built yet")
    model, info = load_model()
    assert info.source == "bundled"
    assert info.location == "lab6/assets/" + BUNDLED_PATH.name
    assert info.dataset == "scenes"
    assert len(model.blocks) == 12


def test_build_architecture_is_empty():
    model = build_architecture("deit_small_patch16_224")
    assert model.cls_token.device.type == "meta"
    assert len(model.blocks) == 12
    assert build_architecture(checkpoint="x.pth").embed_dim == 384
    assert build_architecture().patch_embed.num_patches == 196
    with pytest.raises(WeightsError):
        build_architecture("no_such_model")


def test_random_bytes_read_as_corrupt(tmp_path, lang):
    # Random bytes fail in torch's weights-only unpickler too, but they are no unsafe pickle.
    lang("en")
    generator = torch.Generator().manual_seed(7)
    for index in range(5):
        path = tmp_path / f"random{index}.pth"
        path.write_bytes(bytes(torch.randint(0, 256, (4000,), generator=generator, dtype=torch.uint8).tolist()))
        with pytest.raises(WeightsError) as caught:
            load_model(TINY, path)
        assert caught.value.key == "weights.corrupt", path.read_bytes()[:8]
        assert "Weights only load failed" not in str(caught.value)


class RunsCommand:
    """A pickle that would call os.system when loaded without weights_only."""

    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_unsafe_pickle_names_the_object(tmp_path, tiny_state, lang):
    lang("en")
    path = tmp_path / "unsafe.pth"
    torch.save({"model": tiny_state, "hook": RunsCommand()}, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.unsafe_pickle"
    reason = caught.value.values["error"]
    assert "system" in reason
    assert "In PyTorch 2.6" not in reason
    assert "\n" not in reason


def test_plain_pickle_rejected_quietly(tmp_path, lang, capfd):
    import pickle

    lang("en")
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.corrupt"
    assert "pickle protocol" not in capfd.readouterr().err


def test_zip_error_reason_is_one_sentence(tmp_path, tiny_state, lang):
    lang("en")
    full = tmp_path / "full.pth"
    torch.save(tiny_state, full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, cut)
    reason = caught.value.values["error"]
    assert reason.startswith("PytorchStreamReader failed")
    assert "internal miniz error" not in reason


def test_integer_weights_rejected(tmp_path, tiny_state, lang):
    lang("en")
    path = tmp_path / "quantized.pth"
    torch.save({k: v.to(torch.int8) if v.is_floating_point() else v for k, v in tiny_state.items()}, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.integer_weights"
    assert caught.value.values["count"] == len(tiny_state)
    assert caught.value.values["dtype"] == "torch.int8"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_rejected(tmp_path, tiny_state, lang, bad):
    lang("en")
    state = {k: v.clone() for k, v in tiny_state.items()}
    state["blocks.3.attn.qkv.weight"][0, 0] = bad
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as caught:
        load_model(TINY, path)
    assert caught.value.key == "weights.not_finite"
    assert caught.value.values["keys"] == "blocks.3.attn.qkv.weight"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoint_loads(tmp_path, tiny_state, dtype):
    path = tmp_path / "half.pth"
    torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in tiny_state.items()}, path)
    model, _ = load_model(TINY, path)
    assert model.cls_token.dtype == torch.float32
    assert torch.equal(model.cls_token, tiny_state["cls_token"].to(dtype).float())


def test_unknown_pretrained_tag(lang):
    lang("en")
    for load in (lambda name: load_model(name), lambda name: build_architecture(name)):
        with pytest.raises(WeightsError) as caught:
            load("deit_tiny_patch16_224.nope")
        assert caught.value.key == "weights.unknown_tag"
        assert caught.value.values["suggestions"] == "deit_tiny_patch16_224.fb_in1k"


def test_unknown_name_ignores_case(lang):
    lang("en")
    with pytest.raises(WeightsError) as caught:
        load_model("BUNDLED")
    assert caught.value.values["suggestions"] == BUNDLED
    with pytest.raises(WeightsError) as caught:
        load_model("DeiT_Tiny_Patch16_224")
    assert "deit_tiny_patch16_224" in caught.value.values["suggestions"]


def test_checkpoint_name_too_long(tmp_path, lang):
    lang("en")
    with pytest.raises(WeightsError) as caught:
        read_state_dict(tmp_path / ("x" * 300 + ".pth"))
    assert caught.value.key == "weights.inaccessible"
    assert "too long" in str(caught.value)


def test_class_label_out_of_range(tmp_path):
    _, info = load_model(BUNDLED)
    assert info.class_label(info.num_classes) == f"class {info.num_classes}"
    assert info.class_label(-1) == "class -1"


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_failed_download_gives_one_message(lang, language, monkeypatch):
    import lab6.weights as weights
    from huggingface_hub.utils import logging as hub_logging

    lang(language)
    monkeypatch.setattr(weights, "hub_offline", lambda: False)

    def refuse_download(*args, **kwargs):
        # Stands in for timm's download; no test may reach the network.
        assert hub_logging.get_verbosity() == hub_logging.ERROR  # retry warnings are silenced
        raise OSError("Network is unreachable.")

    monkeypatch.setattr(timm, "create_model", refuse_download)
    verbosity = hub_logging.get_verbosity()
    with pytest.raises(WeightsError) as caught:
        load_model("deit_small_patch16_224")
    assert caught.value.key == "weights.download_failed"
    message = str(caught.value)
    assert "Network is unreachable" in message
    assert ".。" not in message and ".." not in message
    assert hub_logging.get_verbosity() == verbosity
