"""Tests of the procedural scenes and the shipped held-out set."""

import numpy as np
import pytest

from lab6.i18n import Lab6Error
from lab6.scenes import (
    CLASS_NAMES,
    CLASS_NAMES_ZH,
    HELDOUT_SEED_BASE,
    NUM_PATCHES,
    Scene,
    load_heldout,
    make_scene,
    object_patches,
    patch_coverage,
    save_heldout,
)


def test_class_names_ascii_and_paired():
    assert len(CLASS_NAMES) == len(CLASS_NAMES_ZH)
    assert 6 <= len(CLASS_NAMES) <= 10
    for name in CLASS_NAMES:
        assert name.isascii()
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)


def test_scene_shapes_and_types():
    scene = make_scene(7)
    assert scene.image.shape == (224, 224, 3)
    assert scene.image.dtype == np.uint8
    assert scene.mask.shape == (224, 224)
    assert scene.mask.dtype == bool
    assert 0 <= scene.label < len(CLASS_NAMES)
    assert scene.seed == 7


def test_same_seed_same_scene():
    first, second = make_scene(123), make_scene(123)
    assert np.array_equal(first.image, second.image)
    assert np.array_equal(first.mask, second.mask)
    assert first.label == second.label


def test_different_seeds_differ():
    assert not np.array_equal(make_scene(1).image, make_scene(2).image)


def test_label_argument_sets_class():
    for label in range(len(CLASS_NAMES)):
        assert make_scene(5, label=label).label == label


def test_bad_label_rejected():
    with pytest.raises(ValueError, match="label"):
        make_scene(0, label=len(CLASS_NAMES))


def test_object_size_in_range():
    shares = [object_patches(make_scene(s).mask).mean() for s in range(20)]
    assert min(shares) > 0.12
    assert max(shares) < 0.36


def test_mask_matches_object_pixels():
    # Without patch noise the object is drawn in two colours, so its pixels take at most two values.
    for seed in range(5):
        scene = make_scene(seed, patch_noise=0.0)
        colours = np.unique(scene.image[scene.mask].reshape(-1, 3), axis=0)
        assert len(colours) <= 2
        # Just outside the mask the background differs from the object's colours somewhere.
        ring = np.zeros_like(scene.mask)
        ring[1:-1, 1:-1] = scene.mask[2:, 1:-1] | scene.mask[:-2, 1:-1] | scene.mask[1:-1, 2:] | scene.mask[1:-1, :-2]
        ring &= ~scene.mask
        outside = scene.image[ring].reshape(-1, 3)
        assert not all(any((px == c).all() for c in colours) for px in outside)


def test_coverage_sums_to_mask_area():
    scene = make_scene(11)
    coverage = patch_coverage(scene.mask)
    assert coverage.shape == (NUM_PATCHES,)
    assert coverage.min() >= 0.0
    assert coverage.max() <= 1.0
    assert coverage.sum() * 256 == pytest.approx(scene.mask.sum())


def test_coverage_row_major_layout():
    mask = np.zeros((224, 224), dtype=bool)
    mask[16:32, 48:64] = True  # row 1, column 3
    mask[0:8, 0:16] = True  # half of patch 0
    coverage = patch_coverage(mask)
    assert coverage[1 * 14 + 3] == 1.0
    assert coverage[0] == 0.5
    assert coverage.sum() == 1.5
    assert object_patches(mask).sum() == 2  # a half-covered patch counts (>= 50%)


def test_coverage_batched_and_bad_shape():
    masks = np.stack([make_scene(s).mask for s in range(3)])
    batched = patch_coverage(masks)
    assert batched.shape == (3, NUM_PATCHES)
    assert np.allclose(batched[1], patch_coverage(masks[1]))
    with pytest.raises(ValueError, match="divisible"):
        patch_coverage(np.zeros((10, 10), dtype=bool))


def test_heldout_loads_and_is_disjoint():
    scenes = load_heldout()
    assert 64 <= len(scenes) <= 128
    assert all(s.seed >= HELDOUT_SEED_BASE for s in scenes)
    assert {s.label for s in scenes} == set(range(len(CLASS_NAMES)))
    first = scenes[0]
    assert first.image.shape == (224, 224, 3)
    assert first.image.dtype == np.uint8
    assert first.mask.shape == (224, 224)


def test_heldout_round_trip(tmp_path):
    scenes = [make_scene(s) for s in (3, 4)]
    path = tmp_path / "heldout.npz"
    save_heldout(scenes, path)
    loaded = load_heldout(path)
    for before, after in zip(scenes, loaded):
        assert np.array_equal(before.image, after.image)
        assert np.array_equal(before.mask, after.mask)
        assert before.label == after.label
        assert before.seed == after.seed


def test_heldout_missing_file(tmp_path):
    with pytest.raises(Lab6Error) as info:
        load_heldout(tmp_path / "absent.npz")
    assert info.value.key == "heldout.missing"
    assert "absent.npz" in str(info.value)


def test_scene_is_dataclass():
    scene = make_scene(0)
    assert isinstance(scene, Scene)
