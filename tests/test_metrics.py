"""Tests of foreground retention, object recall and the random baseline."""

import math

import numpy as np
import pytest
import torch

from lab6.bundled import create_scenes_vit
from lab6.index import FUSED
from lab6.metrics import SceneMetrics, block_stats, evaluate_scenes, format_metrics, scenes_to_tensor
from lab6.scenes import Scene, make_scene


def _is_object(object_ids, batch=1, patches=196):
    mask = torch.zeros(batch, patches, dtype=torch.bool)
    mask[:, object_ids] = True
    return mask


def test_kept_exactly_object():
    is_object = _is_object(list(range(20)))
    kept = torch.arange(20).unsqueeze(0)  # [1, 20]: exactly the object
    (stats,) = block_stats([kept], is_object)
    assert stats.kept.item() == 20
    assert stats.retention.item() == 1.0
    assert stats.recall.item() == 1.0


def test_half_object_half_background():
    is_object = _is_object(list(range(10)))
    kept = torch.tensor([[0, 1, 2, 3, 4, 100, 101, 102, 103, 104]])
    (stats,) = block_stats([kept], is_object)
    assert stats.retention.item() == pytest.approx(0.5)
    assert stats.recall.item() == pytest.approx(0.5)


def test_fused_token_not_counted():
    is_object = _is_object([0, 1, 2, 3])
    kept = torch.tensor([[0, 1, FUSED, 50]])
    (stats,) = block_stats([kept], is_object)
    assert stats.kept.item() == 3
    assert stats.retention.item() == pytest.approx(2 / 3)
    assert stats.recall.item() == pytest.approx(0.5)


def test_no_object_gives_nan_recall():
    is_object = torch.zeros(1, 196, dtype=torch.bool)
    (stats,) = block_stats([torch.tensor([[5, 6]])], is_object)
    assert stats.retention.item() == 0.0
    assert math.isnan(stats.recall.item())


def _square_scene(label=0):
    mask = np.zeros((224, 224), dtype=bool)
    mask[0:64, 0:64] = True  # 16 object patches: rows 0-3, columns 0-3
    image = np.zeros((224, 224, 3), dtype=np.uint8)
    return Scene(image=image, mask=mask, label=label)


def test_evaluate_random_baseline_and_shapes():
    torch.manual_seed(0)
    model = create_scenes_vit(8)
    scenes = [make_scene(s) for s in range(3)]
    metrics = evaluate_scenes(model, scenes, keep_rate="lab", fuse=True, batch_size=2)
    assert metrics.blocks == (4, 7, 10)
    assert metrics.num_scenes == 3
    assert 0.0 <= metrics.accuracy <= 1.0
    # Lab schedule with fusion: 138 of 196 candidates kept, then 98 of 139, then 70 of 99
    # (each later block's candidates include the fused token).
    expected = [138 / 196, 138 / 196 * 98 / 139, 138 / 196 * 98 / 139 * 70 / 99]
    assert metrics.random_recall == pytest.approx(expected)
    assert metrics.kept_patches[0] == 138
    for value in metrics.foreground_retention + metrics.object_recall:
        assert 0.0 <= value <= 1.0


def test_evaluate_restores_model_settings():
    model = create_scenes_vit(8)
    model.train()
    evaluate_scenes(model, [make_scene(0)], keep_rate="lab", fuse=False)
    assert model.training
    assert all(block.keep_rate == 1.0 for block in model.blocks)
    assert all(block.fuse for block in model.blocks)


def test_evaluate_object_attending_model():
    """A model whose CLS attention peaks on the object keeps every object patch."""
    model = create_scenes_vit(8).eval()
    # Make the patch embedding respond only to bright pixels and let block 4's CLS query
    # look for that response, so CLS attention ranks the bright (object) patches first.
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.zero_()
            block.attn.qkv.bias.zero_()
        model.patch_embed.proj.weight.zero_()
        model.patch_embed.proj.bias.zero_()
        model.patch_embed.proj.weight[0] = 1.0  # channel 0 sums the patch's pixels
        model.pos_embed.zero_()
        model.cls_token.zero_()
        model.cls_token[0, 0, 1] = 1.0
        dim = model.embed_dim
        for block in model.blocks:
            block.norm1.weight.fill_(1.0)
            block.norm1.bias.zero_()
            block.attn.qkv.weight[1, 1] = 50.0  # query of channel 1: large for CLS only
            block.attn.qkv.weight[dim + 1, 0] = 1.0  # key of channel 1: the patch brightness
    scene = _square_scene()
    scene.image[scene.mask] = 255
    metrics = evaluate_scenes(model, [scene], keep_rate="lab", fuse=True)
    assert metrics.object_share == pytest.approx(16 / 196)
    assert metrics.object_recall == pytest.approx((1.0, 1.0, 1.0))
    assert metrics.foreground_retention[0] == pytest.approx(16 / 138)


def test_scenes_to_tensor_normalises():
    model = create_scenes_vit(8)
    scene = _square_scene()
    x = scenes_to_tensor([scene], model)
    assert x.shape == (1, 3, 224, 224)
    assert x[0, 0, 100, 100].item() == pytest.approx((0.0 - 0.5) / 0.25)


def test_evaluate_rejects_empty():
    with pytest.raises(ValueError, match="at least one scene"):
        evaluate_scenes(create_scenes_vit(8), [])


def _metrics(fuse=True):
    return SceneMetrics(
        schedule=(1, 1, 1, 0.7, 1, 1, 0.7, 1, 1, 0.7, 1, 1),
        fuse=fuse,
        num_scenes=48,
        accuracy=1.0,
        object_share=0.243,
        blocks=(4, 7, 10),
        kept_patches=(138.0, 97.8, 69.4),
        foreground_retention=(0.278, 0.358, 0.454),
        object_recall=(0.803, 0.736, 0.661),
        random_recall=(0.704, 0.496, 0.351),
    )


def test_format_metrics_chinese(monkeypatch):
    monkeypatch.setenv("LAB6_LANG", "zh-TW")
    lines = format_metrics(_metrics()).splitlines()
    assert lines[0] == "排程 0.7@4,7,10，fusion 開啟，48 張場景：準確率 100.0%，物體佔比 24.3%"
    assert lines[1].startswith("  第  4 個 block 之後：保留 138.0 個 patch")
    assert "object recall 80.3%（隨機挑選 70.4%）" in lines[1]
    assert len(lines) == 4
    assert "fusion 關閉" in format_metrics(_metrics(fuse=False))


def test_format_metrics_english(monkeypatch):
    monkeypatch.setenv("LAB6_LANG", "en")
    text = format_metrics(_metrics())
    assert text.isascii()
    assert text.splitlines()[0] == "schedule 0.7@4,7,10, fusion on, 48 scenes: accuracy 100.0%, object share 24.3%"
    assert "  block 10: kept  69.4 patches, retention 45.4%, recall 66.1% (random 35.1%)" in text
