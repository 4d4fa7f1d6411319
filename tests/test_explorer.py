"""The keep-rate explorer, driven headless by setting widget values."""

from __future__ import annotations

import datetime
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

import lab6.explorer as explorer_module
from lab6.bundled import BUNDLED_PATH, create_scenes_vit
from lab6.evit import apply_evit
from lab6.figure import pruning_masks, render_panel
from lab6.flops import count_flops
from lab6.i18n import tr
from lab6.images import prepare
from lab6.messages import explorer as explorer_messages
from lab6.scenes import make_scene
from lab6.schedule import LAB_SCHEDULE, num_kept, token_counts


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed) for seed in range(3)]


@pytest.fixture
def model(randomize_vit):
    torch.manual_seed(0)
    return randomize_vit(create_scenes_vit())


@pytest.fixture
def panel(model, scenes, lang):
    lang("zh-TW")
    return explorer_module.explore(model, scenes=scenes)


def png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def upload(panel, name: str, content: bytes) -> None:
    modified = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    entry = {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content), "last_modified": modified}
    panel.upload.value = (entry,)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def visible_panels(panel) -> int:
    return len(panel.figure_box.children)


def test_opens_with_lab_schedule(panel, model):
    state = panel.state
    assert state.schedule == tuple(float(r) for r in LAB_SCHEDULE)
    assert list(state.token_counts) == token_counts(LAB_SCHEDULE, fuse=True)
    assert state.kept_patches == (138, 97, 70)
    assert state.gflops == pytest.approx(count_flops(model, LAB_SCHEDULE, fuse=True) / 1e9)
    assert state.gflops_unpruned == pytest.approx(count_flops(model, 1.0) / 1e9)
    assert visible_panels(panel) == 4
    assert panel.schedule_text.value == "0.7@4,7,10"
    assert panel.message.layout.display == "none"


def test_shown_text_matches_state(panel):
    state = panel.state
    for count in (140, 100, 72):
        assert f">{count}</td>" in panel.token_table.value
    assert f"{state.gflops:.3f}" in panel.gflops_label.value
    assert f"{state.gflops_unpruned:.3f}" in panel.gflops_label.value
    assert f"{state.gflops / state.gflops_unpruned:.1%}" in panel.gflops_label.value
    assert panel.top5_table.value.count("<tr>") == 5
    assert "第 4 個 block 之後：138 個 patch + fused token" in panel.panel_captions[1].value


def test_panels_match_figure_renderer(panel, model, scenes):
    prepared = prepare(Image.fromarray(scenes[0].image), model)
    apply_evit(model, LAB_SCHEDULE, fuse=True)
    with torch.no_grad():
        output = model.forward_evit(prepared.tensor)
    masks = pruning_masks(output, fuse=True)
    assert np.array_equal(png_array(panel.panel_images[0].value), prepared.view)
    for index, mask in enumerate(masks, start=1):
        expected = render_panel(prepared.view, mask.kept, mask.fused)
        assert np.array_equal(png_array(panel.panel_images[index].value), expected)
    probs = output.logits.softmax(dim=1)[0]
    assert panel.state.top5[0][0] == int(probs.argmax())
    assert panel.state.top5[0][1] == pytest.approx(float(probs.max()), abs=1e-5)


def test_slider_changes_tokens_gflops_and_image(panel, model):
    before_image = panel.panel_images[1].value
    before_gflops = panel.state.gflops
    panel.rate_sliders[3].value = 0.5
    state = panel.state
    expected = 1 + num_kept(0.5, 197) + 1
    assert state.token_counts[3] == expected == 100
    assert f">{expected}</td>" in panel.token_table.value
    schedule = (1, 1, 1, 0.5, 1, 1, 0.7, 1, 1, 0.7, 1, 1)
    assert list(state.token_counts) == token_counts(schedule, fuse=True)
    assert state.gflops == pytest.approx(count_flops(model, schedule, fuse=True) / 1e9)
    assert state.gflops < before_gflops
    assert panel.panel_images[1].value != before_image
    assert state.kept_patches[0] == num_kept(0.5, 197) == 98
    assert "第 4 個 block 之後：98 個 patch + fused token" in panel.panel_captions[1].value
    assert panel.schedule_text.value == "1,1,1,0.5,1,1,0.7,1,1,0.7,1,1"


def test_moving_pruning_block(panel):
    panel.rate_sliders[3].value = 1.0
    panel.rate_sliders[1].value = 0.7
    assert panel.state.schedule[1] == 0.7
    assert panel.state.token_counts[1] == 140
    assert panel.state.token_counts[3] == 140
    assert "第 2 個 block 之後" in panel.panel_captions[1].value
    assert panel.schedule_text.value == "0.7@2,7,10"


def test_fusion_toggle(panel, model):
    panel.fuse_toggle.value = False
    assert [panel.state.token_counts[i] for i in (3, 6, 9)] == [139, 98, 69]
    assert panel.state.gflops == pytest.approx(count_flops(model, LAB_SCHEDULE, fuse=False) / 1e9)
    assert "fused token" not in panel.panel_captions[1].value
    unfused = png_array(panel.panel_images[2].value)
    assert visible_panels(panel) == 4
    panel.fuse_toggle.value = True
    assert not np.array_equal(unfused, png_array(panel.panel_images[2].value))


def test_presets(panel):
    panel.no_pruning_button.click()
    assert panel.state.token_counts == (197,) * 12
    assert panel.state.gflops == pytest.approx(panel.state.gflops_unpruned)
    assert panel.state.agrees
    assert visible_panels(panel) == 1
    assert panel.schedule_text.value == "1"
    assert all(slider.value == 1.0 for slider in panel.rate_sliders)
    panel.lab_button.click()
    assert panel.state.token_counts[9] == 72
    assert [slider.value for slider in panel.rate_sliders] == list(LAB_SCHEDULE)


def test_preset_updates_once(panel, monkeypatch):
    calls = []
    compute = panel._compute
    monkeypatch.setattr(panel, "_compute", lambda: calls.append(1) or compute())
    panel.set_schedule("0.5@3,6,9")
    assert len(calls) == 1
    assert panel.state.token_counts[2] == 100


def test_schedule_text(panel):
    panel.schedule_text.value = "0.5@2,5"
    assert [s.value for s in panel.rate_sliders][:5] == [1.0, 0.5, 1.0, 1.0, 0.5]
    assert panel.state.token_counts[1] == 100


def test_all_rates_zero_shows_message(panel):
    panel.set_schedule(1.0)
    for slider in panel.rate_sliders:
        slider.value = 0.0
    assert panel.message.layout.display is None
    assert tr("schedule.bad_rate", value=0.0) in panel.message.value.replace("&#x27;", "'")
    assert "無法更新" in panel.message.value
    assert panel.results.layout.display == "none"
    panel.lab_button.click()
    assert panel.message.layout.display == "none"
    assert panel.results.layout.display is None


def test_bad_schedule_text_shows_message(panel):
    panel.schedule_text.value = "0.7@4@7"
    assert "無法解析 keep rate 字串" in panel.message.value
    assert panel.state.schedule == tuple(float(r) for r in LAB_SCHEDULE)


def test_empty_upload(panel):
    upload(panel, "empty.png", b"")
    assert tr("explorer.upload_empty", name="empty.png") in panel.message.value
    assert panel.image_choice.value == "scene:0"


def test_not_an_image_upload(panel):
    upload(panel, "notes.txt", b"these are not pixels")
    assert tr("explorer.upload_not_image", name="notes.txt") in panel.message.value


def test_truncated_upload(panel):
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    upload(panel, "cut.png", data[: len(data) // 2])
    assert "無法把上傳的檔案 cut.png 讀成圖片" in panel.message.value


def test_valid_upload(panel):
    before = panel.panel_images[0].value
    upload(panel, "photo.png", png_bytes(Image.new("RGBA", (320, 200), (200, 30, 30, 120))))
    assert panel.image_choice.value == "upload:1"
    assert panel.image_choice.options[-1] == ("上傳：photo.png", "upload:1")
    assert panel.state.image == "upload:1"
    assert panel.message.layout.display == "none"
    assert panel.panel_images[0].value != before
    assert png_array(panel.panel_images[0].value).shape == (224, 224, 3)


def test_image_choice(panel):
    first = panel.state.top5
    panel.image_choice.value = "scene:2"
    assert panel.state.image == "scene:2"
    assert panel.state.top5 != first


def test_unexpected_error_is_a_message(panel, monkeypatch):
    def broken():
        raise RuntimeError("kernel hiccup")

    monkeypatch.setattr(panel, "_compute", broken)
    panel.update()
    assert "RuntimeError: kernel hiccup" in panel.message.value
    assert "Traceback" not in panel.message.value


def test_english_labels(model, scenes, lang):
    lang("en")
    panel = explorer_module.explore(model, scenes=scenes)
    assert panel.fuse_toggle.description == explorer_messages.EN["explorer.fuse"]
    assert panel.panel_captions[1].value == "<small>After block 4: 138 patches + fused token</small>"
    assert "Tokens after each block" in panel.token_table.value


def test_bad_model_argument(lang):
    lang("en")
    with pytest.raises(explorer_module.ExplorerError, match="model argument 'resnet50'"):
        explorer_module.explore("resnet50")


def test_message_catalogues_match():
    assert explorer_messages.ZH_TW.keys() == explorer_messages.EN.keys()
    for key, text in explorer_messages.ZH_TW.items():
        assert sorted(_fields(text)) == sorted(_fields(explorer_messages.EN[key])), key


def _fields(template: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def fake_loader(model):
    def load(name):
        return explorer_module._LoadedModel(model=model, class_names=tuple(f"{name} {i}" for i in range(8)), device=torch.device("cpu"))

    return load


def test_deit_disabled_without_weights(model, scenes, monkeypatch, lang):
    lang("zh-TW")
    monkeypatch.setattr(explorer_module, "_load_named_model", fake_loader(model))
    monkeypatch.setattr(explorer_module, "_deit_available", lambda: False)
    panel = explorer_module.explore("bundled", scenes=scenes)
    assert [key for _, key in panel.model_choice.options] == ["bundled"]
    assert "DeiT-S 已停用" in panel.model_note.value


def test_deit_offered_with_weights(model, scenes, monkeypatch):
    monkeypatch.setattr(explorer_module, "_load_named_model", fake_loader(model))
    monkeypatch.setattr(explorer_module, "_deit_available", lambda: True)
    panel = explorer_module.explore("bundled", scenes=scenes)
    assert [key for _, key in panel.model_choice.options] == ["bundled", explorer_module.DEIT_SMALL]
    assert panel.model_note.value == ""
    panel.model_choice.value = explorer_module.DEIT_SMALL
    assert panel.state.model == explorer_module.DEIT_SMALL
    assert explorer_module.DEIT_SMALL in panel.top5_table.value


def test_model_load_failure_is_a_message(model, scenes, monkeypatch):
    from lab6.i18n import WeightsError

    def load(name):
        if name == explorer_module.DEIT_SMALL:
            raise WeightsError("weights.unknown_model", name=name, suggestions="deit_tiny_patch16_224")
        return fake_loader(model)(name)

    monkeypatch.setattr(explorer_module, "_load_named_model", load)
    monkeypatch.setattr(explorer_module, "_deit_available", lambda: True)
    panel = explorer_module.explore("bundled", scenes=scenes)
    panel.model_choice.value = explorer_module.DEIT_SMALL
    assert "無法載入模型 deit_small_patch16_224" in panel.message.value


def test_slider_changes_update_state(panel):
    # Update speed is measured by benchmarks/explorer_speed.py, not asserted here.
    for rate in (0.5, 0.6, 0.4, 0.65, 0.55, 0.45, 0.35):
        panel.rate_sliders[6].value = rate
        assert panel.state.schedule[6] == rate


@pytest.mark.skipif(not BUNDLED_PATH.is_file(), reason="bundled weights not built yet")
def test_bundled_default(lang):
    lang("zh-TW")
    panel = explorer_module.explore()
    assert panel.model_choice.value == "bundled"
    assert panel.state.token_counts[9] == 72
    assert panel.image_choice.value.startswith("scene:")
    assert any(key.startswith("photo:") for _, key in panel.image_choice.options)
    assert "（" in panel.top5_table.value  # zh-TW class names with the English name in brackets
    panel.image_choice.value = next(key for _, key in panel.image_choice.options if key.startswith("photo:"))
    assert panel.message.layout.display == "none"
    assert math.isclose(panel.state.gflops / panel.state.gflops_unpruned, 0.648, abs_tol=0.01)


def test_imagenet_style_model_photo(randomize_vit, scenes):
    import timm

    model = randomize_vit(timm.create_model("deit_tiny_patch16_224", pretrained=False))
    panel = explorer_module.explore(model, scenes=scenes, class_names=[f"imagenet {i}" for i in range(1000)])
    photo = next(key for _, key in panel.image_choice.options if key.startswith("photo:"))
    panel.image_choice.value = photo
    assert panel.message.layout.display == "none"
    assert panel.state.image == photo
    assert panel.state.token_counts[9] == 72
    assert png_array(panel.panel_images[0].value).shape == (224, 224, 3)
    assert "imagenet" in panel.top5_table.value


def test_display_bundle(panel):
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert bundle["text/plain"] == tr("explorer.plain_text")


def test_image_argument_listed_once(model, scenes):
    from lab6.explorer import _bundled_photos

    photo = _bundled_photos()[0]
    panel = explorer_module.explore(model, scenes=scenes, image=photo)
    keys = [key for _, key in panel.image_choice.options]
    assert keys[0] == f"photo:{photo}"
    assert len(keys) == len(set(keys))
    assert panel.state.image == keys[0]


def test_missing_image_argument(model, scenes, lang):
    from lab6.i18n import ImageError

    lang("en")
    with pytest.raises(ImageError, match="no-such-file.png"):
        explorer_module.explore(model, scenes=scenes, image="no-such-file.png")


def _all_html(widget) -> str:
    """Return the text of every HTML widget inside ``widget``, depth first."""
    import ipywidgets as widgets

    text = widget.value if isinstance(widget, widgets.HTML) else ""
    for child in getattr(widget, "children", ()):
        text += "\n" + _all_html(child)
    return text


def test_schedule_help_explains_single_rate(panel):
    text = _all_html(panel.widget)
    assert "只寫一個數字（例如 0.9）表示第 4、7、10 個 block 都用這個 keep rate" in text
    assert "0.9" in panel.schedule_text.placeholder
    assert panel.lab_button.description == "lab 排程（0.7@4,7,10）"
