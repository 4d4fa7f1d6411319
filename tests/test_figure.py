"""Tests of lab6.figure: panel masks, the pure panel renderer, and the whole figure."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lab6.evit import apply_evit
from lab6.figure import FUSED_BRIGHTNESS, FUSED_FLOOR, counterfactual_mask, plot_pruning, pruning_masks, render_panel, save_figure
from lab6.i18n import Lab6Error
from lab6.index import FUSED, get_real_idx


def random_view(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 256, size=(224, 224, 3), dtype=np.uint8)  # no black pixel anywhere


@pytest.fixture(scope="module")
def outputs(make_vit):
    """EViT outputs of one random ViT on a batch of two images, with and without fusion."""
    model = apply_evit(make_vit(seed=1))
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    result = {}
    for fuse in (True, False):
        apply_evit(model, "0.7@4,7,10", fuse=fuse)
        with torch.no_grad():
            result[fuse] = model.forward_evit(images)
    return result


def test_render_panel_pixels():
    view = random_view()
    original = view.copy()
    kept = np.zeros(196, dtype=bool)
    kept[0] = True  # top-left patch
    fused = np.zeros(196, dtype=bool)
    fused[15] = True  # row 1, column 1
    panel = render_panel(view, kept, fused)
    np.testing.assert_array_equal(view, original)  # the input is left alone
    assert panel.shape == (224, 224, 3)
    assert panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:16, :16], view[:16, :16])
    luma = view[16:32, 16:32].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    expected_fused = np.repeat(np.round(FUSED_FLOOR + luma * FUSED_BRIGHTNESS)[..., None], 3, axis=-1)
    np.testing.assert_allclose(panel[16:32, 16:32], expected_fused, atol=1)
    assert panel[16:32, 16:32].min() > 0  # dim, but not black like a dropped patch
    rest = np.ones((224, 224), dtype=bool)
    rest[:16, :16] = False
    rest[16:32, 16:32] = False
    assert (panel[rest] == 0).all()


def test_render_panel_accepts_tensors():
    kept = torch.zeros(196, dtype=torch.bool)
    kept[-1] = True
    panel = render_panel(random_view(), kept)
    assert panel[-16:, -16:].min() > 0
    assert panel[:-16].max() == 0


@pytest.mark.parametrize(
    ("view", "kept", "text"),
    [
        (np.zeros((224, 224), dtype=np.uint8), np.zeros(196, bool), "[H, W, 3] uint8"),
        (np.zeros((224, 224, 3), dtype=np.float32), np.zeros(196, bool), "[H, W, 3] uint8"),
        (np.zeros((220, 224, 3), dtype=np.uint8), np.zeros(196, bool), "multiple of the patch size"),
        (np.zeros((224, 224, 3), dtype=np.uint8), np.zeros(195, bool), "196 patches"),
    ],
)
def test_render_panel_rejects_bad_input(view, kept, text):
    with pytest.raises(ValueError, match=text.replace("[", r"\[").replace("]", r"\]")):
        render_panel(view, kept)


@pytest.mark.parametrize("sample", [0, 1])
def test_masks_with_fusion(outputs, sample):
    output = outputs[True]
    panels = pruning_masks(output, fuse=True, sample=sample)
    assert [p.block for p in panels] == [3, 6, 9]
    real = get_real_idx([idx[sample : sample + 1] for idx in output.kept_idx], True, 196)
    for masks, real_idx in zip(panels, real):
        own = int((real_idx >= 0).sum())
        assert int(masks.kept.sum()) == own
        assert set(np.flatnonzero(masks.kept)) == set(real_idx[real_idx >= 0].tolist())
        assert not (masks.kept & masks.fused).any()
        assert (masks.kept | masks.fused).all()  # with fusion every patch is still carried
    assert int(panels[0].kept.sum()) == 138
    assert int(panels[0].fused.sum()) == 196 - 138


def test_masks_without_fusion(outputs):
    panels = pruning_masks(outputs[False], fuse=False)
    assert [int(p.kept.sum()) for p in panels] == [138, 97, 68]  # token counts 139, 98, 69 minus the CLS token
    for masks in panels:
        assert not masks.fused.any()
    assert (panels[2].kept <= panels[1].kept).all()  # a dropped patch never comes back
    assert (panels[1].kept <= panels[0].kept).all()


def test_counterfactual_uses_raw_indices(outputs):
    output = outputs[True]
    wrong = counterfactual_mask(output)
    raw = output.kept_idx[-1][0]
    assert set(np.flatnonzero(wrong)) == set(raw.tolist())
    # Raw indices at block 10 point among 1 + 98 tokens, so they never reach patch 99 or beyond.
    assert np.flatnonzero(wrong).max() <= 98
    real = get_real_idx(output.kept_idx, True, 196)[-1][0]
    assert set(real[real != FUSED].tolist()) != set(raw.tolist())


def test_plot_pruning_panels(outputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_pruning(random_view(), outputs[True], fuse=True)
        titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 5
    assert titles[0] == "input"
    assert titles[1] == "after block 4: 138 kept + fused"
    assert titles[2].startswith("after block 7: ")
    assert titles[4].startswith("block 10 without get_real_idx")
    assert all(title.isascii() for title in titles)
    assert all(text.get_text().isascii() for text in fig.texts)


def test_plot_pruning_options(outputs):
    assert len(plot_pruning(random_view(), outputs[False], fuse=False, counterfactual=False).axes) == 4
    titles = [ax.get_title() for ax in plot_pruning(random_view(), outputs[False], fuse=False, sample=1).axes]
    assert titles[1] == "after block 4: 138 kept"
    assert titles[3] == "after block 10: 68 kept"


def test_plot_without_pruning(make_vit):
    model = apply_evit(make_vit(seed=2), 1.0)
    with torch.no_grad():
        output = model.forward_evit(torch.zeros(1, 3, 224, 224))
    fig = plot_pruning(random_view(), output, fuse=True)
    assert [ax.get_title() for ax in fig.axes] == ["input (no pruning)"]


def test_bad_sample(outputs, lang):
    lang("en")
    with pytest.raises(Lab6Error) as caught:
        plot_pruning(random_view(), outputs[True], fuse=True, sample=2)
    assert caught.value.key == "figure.bad_sample"
    assert "only 2 images" in str(caught.value)


def test_save_figure_png(outputs, tmp_path):
    fig = plot_pruning(random_view(), outputs[True], fuse=True)
    path = save_figure(fig, tmp_path / "figure.png")
    assert path.is_absolute()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 310)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20  # panels, not a blank canvas
    assert (pixels == 0).all(axis=-1).mean() > 0.02  # the counterfactual's black patches are there


def test_fuse_mismatch_rejected(outputs, lang):
    lang("en")
    for made_with in (True, False):
        with pytest.raises(Lab6Error) as caught:
            plot_pruning(random_view(), outputs[made_with], fuse=not made_with)
        assert caught.value.key == "figure.fuse_mismatch"
        assert caught.value.values == {"fuse": not made_with, "made_with": made_with}
        with pytest.raises(Lab6Error):
            pruning_masks(outputs[made_with], fuse=not made_with)


def test_view_of_other_size_rejected(outputs, lang):
    lang("en")
    view = np.zeros((256, 256, 3), dtype=np.uint8)
    with pytest.raises(Lab6Error) as caught:
        plot_pruning(view, outputs[True], fuse=True)
    assert caught.value.key == "figure.view_mismatch"
    assert caught.value.values["grid"] == 256
    assert caught.value.values["patches"] == 196
    with pytest.raises(Lab6Error):
        plot_pruning(random_view(), outputs[True], fuse=True, patch_size=8)


def test_fused_patch_on_black_is_not_black():
    view = np.zeros((224, 224, 3), dtype=np.uint8)
    kept = np.zeros(196, dtype=bool)
    fused = np.ones(196, dtype=bool)
    panel = render_panel(view, kept, fused)
    assert panel.min() == FUSED_FLOOR
