"""The keep-rate sweep: its table against lab6.metrics and the FLOP counter, and its plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from lab6.evit import apply_evit, get_keep_rate
from lab6.flops import count_flops
from lab6.metrics import evaluate_scenes
from lab6.scenes import make_scene
from lab6.schedule import LAB_SCHEDULE, token_counts
from lab6.sweep import LAB_RATE, plot_retention, plot_tradeoff, sweep_keep_rates


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed) for seed in range(6)]


@pytest.fixture
def model(make_vit):
    return make_vit(num_classes=8)


@pytest.fixture
def result(model, scenes):
    return sweep_keep_rates(model, scenes, rates=[1.0, 0.5], batch_size=4, progress=False)


def test_rates_sorted_with_lab_rate(result):
    assert result.rates == (0.5, LAB_RATE, 1.0)
    assert result.blocks == (4, 7, 10)
    assert len(result.gflops) == len(result.accuracy) == len(result.foreground_retention) == 3
    assert all(len(row) == 3 for row in result.object_recall)


def test_unpruned_row(result):
    last = result.rates.index(1.0)
    assert result.agreement[last] == 1.0
    assert result.accuracy[last] == result.accuracy_unpruned
    assert result.gflops[last] == pytest.approx(result.gflops_unpruned)
    assert result.token_counts[last] == (197,) * 12
    assert result.foreground_retention[last] == pytest.approx((result.object_share,) * 3)
    assert result.object_recall[last] == pytest.approx((1.0, 1.0, 1.0))


def test_token_counts_follow_schedule(result):
    lab = result.rates.index(LAB_RATE)
    assert list(result.token_counts[lab]) == token_counts(LAB_SCHEDULE, fuse=True)
    assert result.token_counts[lab][9] == 72


def test_gflops_match_counter(model, result):
    for rate, gflops in zip(result.rates, result.gflops):
        schedule = tuple(rate if i in (3, 6, 9) else 1.0 for i in range(12))
        assert gflops == pytest.approx(count_flops(model, schedule, fuse=True) / 1e9)
    assert result.gflops == tuple(sorted(result.gflops))


def test_agrees_with_metrics_module(model, scenes, result):
    lab = result.rates.index(LAB_RATE)
    metrics = evaluate_scenes(model, scenes, LAB_SCHEDULE, fuse=True, batch_size=4)
    assert result.accuracy[lab] == pytest.approx(metrics.accuracy)
    assert result.foreground_retention[lab] == pytest.approx(metrics.foreground_retention)
    assert result.object_recall[lab] == pytest.approx(metrics.object_recall)
    assert result.random_recall[lab] == pytest.approx(metrics.random_recall)
    assert result.object_share == pytest.approx(metrics.object_share)


def test_without_fusion(model, scenes):
    result = sweep_keep_rates(model, scenes, rates=[0.7], fuse=False, progress=False)
    assert result.rates == (0.7,)
    assert [result.token_counts[0][i] for i in (3, 6, 9)] == [139, 98, 69]


def test_model_settings_restored(model, scenes):
    apply_evit(model, "0.5@2", fuse=False)
    model.train()
    sweep_keep_rates(model, scenes[:2], rates=[0.7], progress=False)
    assert get_keep_rate(model)[1] == 0.5
    assert get_keep_rate(model)[3] == 1.0
    assert all(block.fuse is False for block in model.blocks)
    assert model.training


def test_table_rows(result, monkeypatch):
    monkeypatch.setenv("LAB6_LANG", "en")
    rows = result.rows()
    assert [row["keep_rate"] for row in rows] == [0.5, 0.7, 1.0]
    assert rows[-1]["gflops_ratio"] == pytest.approx(1.0)
    assert rows[1]["tokens_out"] == 72
    assert set(rows[0]) >= {"retention_b4", "recall_b10", "accuracy", "agreement"}
    text = result.format_table()
    assert text.isascii()
    assert len(text.splitlines()) == 3 + len(rows)
    assert text.splitlines()[0].startswith(f"{result.num_scenes} scenes, fusion on, object share")


def test_table_chinese(result, monkeypatch):
    monkeypatch.setenv("LAB6_LANG", "zh-TW")
    lines = result.format_table().splitlines()
    assert lines[0].startswith(f"{result.num_scenes} 張場景，fusion 開啟，物體佔比")
    assert "不剪枝：" in lines[0]
    assert lines[1].startswith("欄位：rate = keep rate")
    assert lines[2].split()[:5] == ["rate", "GFLOPs", "ratio", "acc", "agree"]
    assert len(lines) == 3 + len(result.rates)


def test_empty_scenes_rejected(model):
    with pytest.raises(ValueError, match="at least one scene"):
        sweep_keep_rates(model, [], progress=False)


def test_plots(result):
    tradeoff = plot_tradeoff(result)
    assert len(tradeoff.axes) == 2
    assert [ax.get_xlabel() for ax in tradeoff.axes] == ["GFLOPs per image"] * 2
    for ax in tradeoff.axes:
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        assert len(stars) == 1
        assert stars[0].get_xdata()[0] == pytest.approx(result.gflops[result.rates.index(LAB_RATE)])
    retention = plot_retention(result)
    assert len(retention.axes) == 2
    labels = [text.get_text() for ax in retention.axes for text in ax.get_legend().get_texts()]
    assert "after block 10" in labels
    for figure in (tradeoff, retention):
        texts = [t.get_text() for ax in figure.axes for t in [ax.title, ax.xaxis.label, ax.yaxis.label]]
        assert all(t.isascii() for t in texts)
    plt.close("all")
