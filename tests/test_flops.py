"""FLOPs from PyTorch's FlopCounterMode against the analytic ViT formula."""

from __future__ import annotations

import pytest
import timm

from lab6.evit import apply_evit, get_keep_rate
from lab6.flops import analytic_flops, count_flops, temporary_keep_rate
from lab6.schedule import LAB_SCHEDULE

SCHEDULES = [1.0, LAB_SCHEDULE, 0.5, "0.3@2,5,9", "1,1,0.9,1,0.8,1,1,0.6,1,1,1,0.5"]


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_counter_matches_formula(make_vit, schedule, fuse):
    model = make_vit()
    assert count_flops(model, schedule, fuse) == analytic_flops(model, schedule, fuse)


def test_deit_tiny_matches_formula():
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    for fuse in (True, False):
        assert count_flops(model, LAB_SCHEDULE, fuse) == analytic_flops(model, LAB_SCHEDULE, fuse)


def test_deit_small_unpruned_value():
    # DeiT-S is 4.6 G multiply-adds (the "4.6 GFLOPs" of the DeiT and EViT papers).
    model = timm.create_model("deit_small_patch16_224", pretrained=False).eval()
    unpruned = analytic_flops(model, 1.0)
    assert unpruned / 2e9 == pytest.approx(4.6, abs=0.05)
    assert count_flops(model, 1.0) == unpruned


def test_formula_by_hand_for_one_block():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, num_classes=10).eval()
    channels, tokens = 192, 197
    expected = 2 * 196 * channels * 3 * 16 * 16  # patch embedding
    expected += 2 * tokens * channels * 3 * channels + 4 * tokens * tokens * channels + 2 * tokens * channels * channels
    expected += 4 * tokens * channels * 4 * channels  # MLP, hidden width 4C
    expected += 2 * channels * 10  # head
    assert analytic_flops(model, 1.0) == expected
    assert count_flops(model, 1.0) == expected


def test_pruning_lowers_flops(make_vit):
    model = make_vit()
    rates = [1.0, 0.9, 0.7, 0.5, 0.3]
    counts = [count_flops(model, rate) for rate in rates]
    assert counts == sorted(counts, reverse=True)
    assert len(set(counts)) == len(counts)


def test_count_restores_schedule(make_vit):
    model = make_vit()
    apply_evit(model, "0.5@3", fuse=False)
    count_flops(model, LAB_SCHEDULE, fuse=True)
    assert get_keep_rate(model)[2] == 0.5
    assert get_keep_rate(model)[3] == 1.0
    assert all(block.fuse is False for block in model.blocks)


def test_count_uses_model_schedule(make_vit):
    model = make_vit()
    apply_evit(model, LAB_SCHEDULE, fuse=False)
    assert count_flops(model) == analytic_flops(model, LAB_SCHEDULE, fuse=False)


def test_temporary_keep_rate_restores_on_error(make_vit):
    model = make_vit()
    apply_evit(model, LAB_SCHEDULE)
    with pytest.raises(RuntimeError):
        with temporary_keep_rate(model, 0.5, fuse=False):
            assert get_keep_rate(model)[3] == 0.5
            raise RuntimeError("boom")
    assert get_keep_rate(model) == tuple(float(r) for r in LAB_SCHEDULE)
    assert all(block.fuse for block in model.blocks)
