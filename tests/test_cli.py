"""Tests of ``python -m lab6 visualize``: a full run, and every bad input in both languages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from lab6.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = "deit_tiny_patch16_224"


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cut the Hugging Face Hub off, point its cache at an empty folder and run on the CPU."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("LAB6_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, randomize_vit) -> Path:
    """A random DeiT-Ti in EViT's release format; random weights give peaked CLS attention."""
    model = randomize_vit(timm.create_model(TINY, pretrained=False), seed=5)
    path = tmp_path_factory.mktemp("weights") / "deit_tiny.pth"
    torch.save({"model": model.state_dict(), "epoch": 1}, path)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    y, x = np.mgrid[0:300, 0:400]
    pixels = np.stack([x % 256, y % 256, (x * y) % 256], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("images") / "photo.jpg"
    Image.fromarray(pixels).save(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_visualize_end_to_end(capsys, lang, tiny_checkpoint, photo, tmp_path):
    lang("en")
    out = tmp_path / "figure.png"
    code, stdout, stderr = run(
        capsys, "visualize", str(photo), "--model", TINY, "--checkpoint", str(tiny_checkpoint), "--out", str(out)
    )
    assert code == 0, stderr
    assert f"Model: {TINY}, weights from checkpoint file {tiny_checkpoint}" in stdout
    assert "Device: cpu" in stdout
    assert f"Image: {photo}" in stdout
    assert "Keep-rate schedule: 0.7@4,7,10 (fused token: on)" in stdout
    assert "  token: 197 197 197 140 140 140 100 100 100  72  72  72" in stdout
    assert "Top-5 classes:" in stdout
    top_lines = [line for line in stdout.splitlines() if line.startswith(("  1. ", "  2. ", "  3. ", "  4. ", "  5. "))]
    assert len(top_lines) == 5
    assert all(line.endswith("%") for line in top_lines)
    assert f"Figure saved: {out}" in stdout
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 310)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20


def test_visualize_default_photo_and_out(capsys, lang, tiny_checkpoint, tmp_path):
    lang("zh-TW")
    code, stdout, stderr = run(capsys, "visualize", "--model", TINY, "--checkpoint", str(tiny_checkpoint), "--no-fuse")
    assert code == 0, stderr
    assert "grace_hopper.jpg" in stdout
    assert "（fused token：關）" in stdout
    assert "  token: 197 197 197 139 139 139  98  98  98  69  69  69" in stdout
    assert "前 5 名類別：" in stdout
    assert (tmp_path / "lab6_figure.png").is_file()
    assert f"圖已儲存：{tmp_path / 'lab6_figure.png'}" in stdout


def test_visualize_bundled_checkpoint_uses_scene(capsys, lang, tmp_path):
    from lab6.bundled import create_scenes_vit

    lang("en")
    path = tmp_path / "scenes.pth"
    torch.save(create_scenes_vit().state_dict(), path)
    code, stdout, stderr = run(capsys, "visualize", "--model", "bundled", "--checkpoint", str(path), "--keep-rate", "lab")
    assert code == 0, stderr
    assert "Image: held-out scene (seed " in stdout
    assert "true class: " in stdout


# Each case: arguments (with {photo} and {tmp} filled in), then text the English and the
# Chinese message must contain.
ERROR_CASES = {
    "not_an_image": (["visualize", "{tmp}/notes.jpg"], "is not an image file", "不是 Pillow 能讀取的圖片檔"),
    "missing_image": (["visualize", "{tmp}/absent.jpg"], "not found", "找不到圖片檔"),
    "wrong_length": (["visualize", "{photo}", "--keep-rate", "1,1,0.7"], "has 3 values but the model has 12 blocks", "有 3 個值，但模型有 12 個 block"),
    "rate_above_one": (["visualize", "{photo}", "--keep-rate", "1.5"], "outside (0, 1]", "不在 (0, 1] 範圍內"),
    "rate_zero": (["visualize", "{photo}", "--keep-rate", "0@4"], "outside (0, 1]", "不在 (0, 1] 範圍內"),
    "malformed_schedule": (["visualize", "{photo}", "--keep-rate", "0.7@@4"], "Cannot parse the keep-rate string", "無法解析 keep rate 字串"),
    "broken_checkpoint": (["visualize", "{photo}", "--checkpoint", "{tmp}/broken.pth"], "damaged, truncated", "已損毀、不完整"),
    "unknown_model": (["visualize", "{photo}", "--model", "deit_smal_patch16_224"], "timm has no model named", "timm 沒有名為"),
    "uncached_weights": (["visualize", "{photo}", "--model", "deit_small_patch16_224"], "HF_HUB_OFFLINE", "HF_HUB_OFFLINE"),
    "unsupported_model": (["visualize", "{photo}", "--model", "resnet18"], "not a timm VisionTransformer", "不是 timm 的 VisionTransformer"),
    "model_without_cls": (["visualize", "{photo}", "--model", "vit_medium_patch16_gap_256"], "has no CLS token", "沒有 CLS token"),
    "unknown_pretrained_tag": (["visualize", "{photo}", "--model", "deit_tiny_patch16_224.nope"], "deit_tiny_patch16_224.fb_in1k", "deit_tiny_patch16_224.fb_in1k"),
    "out_not_png": (["visualize", "{photo}", "--out", "{tmp}/figure.jpg"], "is not a PNG file name", "不是 PNG 檔名"),
    "out_bare_suffix": (["visualize", "{photo}", "--out", "{tmp}/.png"], "is not a PNG file name", "不是 PNG 檔名"),
    "out_empty": (["visualize", "{photo}", "--out", " "], "--out is empty", "--out 是空的"),
    "out_name_too_long": (["visualize", "{photo}", "--out", "{tmp}/" + "x" * 300 + ".png"], "File name too long", "File name too long"),
    "image_name_too_long": (["visualize", "{tmp}/" + "x" * 300 + ".png"], "Cannot open image file", "無法開啟圖片檔"),
    "checkpoint_name_too_long": (["visualize", "{photo}", "--checkpoint", "{tmp}/" + "x" * 300 + ".pth"], "Cannot open weights file", "無法開啟權重檔"),
    "out_folder_missing": (["visualize", "{photo}", "--out", "{tmp}/no/such/figure.png"], "does not exist", "不存在"),
    "bad_device": (["visualize", "{photo}", "--device", "tpu"], "Unknown device 'tpu'", "無法辨識裝置 'tpu'"),
}


@pytest.mark.parametrize("language", ["en", "zh-TW"])
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_visualize_errors(capsys, lang, photo, tmp_path, case, language):
    lang(language)
    (tmp_path / "notes.jpg").write_text("not a picture")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated zip")
    argv, english, chinese = ERROR_CASES[case]
    argv = [a.format(photo=photo, tmp=tmp_path) for a in argv]
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("error: " if language == "en" else "錯誤：")
    assert (english if language == "en" else chinese) in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "lab6_figure.png").exists()


@pytest.mark.parametrize(("language", "text"), [("en", "invalid command line"), ("zh-TW", "命令列參數有誤")])
def test_usage_errors(capsys, lang, language, text):
    lang(language)
    for argv in (["visualize", "--bogus"], ["paint"], [], ["visualize", "--keep-rate"]):
        code, stdout, stderr = run(capsys, *argv)
        assert code == 2, argv
        assert text in stderr, argv
        assert "--help" in stderr


@pytest.mark.parametrize(
    ("language", "texts"),
    [
        ("en", ["watch EViT prune tokens", "commands", "draw the patches each pruning block keeps"]),
        ("zh-TW", ["觀察 EViT 的 token 剪枝", "指令", "用法：", "畫出每個剪枝 block 之後留下的 patch"]),
    ],
)
def test_help_is_localised(capsys, lang, language, texts):
    lang(language)
    code, stdout, _ = run(capsys, "--help")
    assert code == 0
    for text in texts:
        assert text in stdout


def test_visualize_help_lists_options(capsys, lang):
    lang("zh-TW")
    code, stdout, _ = run(capsys, "visualize", "--help")
    assert code == 0
    for option in ("--model", "--checkpoint", "--keep-rate", "--no-fuse", "--out", "--device", "LAB6_LANG=en"):
        assert option in stdout
    assert "選項" in stdout


def test_module_entry_point(tmp_path):
    """``python -m lab6`` runs main() and exits with its status, without a traceback."""
    env = {**os.environ, "LAB6_LANG": "en", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "lab6", "visualize", str(tmp_path / "absent.png")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 2
    assert "Image file" in result.stderr
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_subcommand_help_prints_usage_prefix_once(capsys, monkeypatch):
    from lab6.cli import main

    monkeypatch.setenv("LAB6_LANG", "en")
    assert main(["visualize", "--help"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("usage: python -m lab6 visualize")
    assert first_line.count("usage:") == 1


def test_out_same_as_image_rejected(capsys, lang, tiny_checkpoint, tmp_path):
    lang("en")
    picture = tmp_path / "picture.png"
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(picture)
    before = picture.read_bytes()
    for out in (picture, tmp_path / "." / "picture.png"):
        code, stdout, stderr = run(
            capsys, "visualize", str(picture), "--model", TINY, "--checkpoint", str(tiny_checkpoint), "--out", str(out)
        )
        assert code == 2
        assert stdout == ""
        assert "is the input image" in stderr
    assert picture.read_bytes() == before


def test_out_not_writable_fails_early(capsys, lang, photo, tmp_path, monkeypatch):
    import lab6.cli

    lang("en")
    # Root passes every permission check, so os.access is replaced to test the branch anywhere.
    monkeypatch.setattr(lab6.cli.os, "access", lambda path, mode: False)
    loads = []
    monkeypatch.setattr("lab6.weights.load_model", lambda *args: loads.append(args))
    code, stdout, stderr = run(capsys, "visualize", str(photo), "--out", str(tmp_path / "figure.png"))
    assert code == 2
    assert "permission denied" in stderr
    assert loads == []


def test_existing_out_kept_when_run_fails(capsys, lang, photo, tmp_path, tiny_checkpoint, monkeypatch):
    lang("en")
    out = tmp_path / "figure.png"
    out.write_bytes(b"earlier figure")
    failures = {
        "bad image": ["visualize", str(tmp_path / "absent.jpg"), "--out", str(out)],
        "bad schedule": ["visualize", str(photo), "--keep-rate", "2", "--out", str(out)],
        "bad checkpoint": ["visualize", str(photo), "--checkpoint", str(photo), "--out", str(out)],
    }
    for name, argv in failures.items():
        code, _, stderr = run(capsys, *argv)
        assert code == 2, name
        assert out.read_bytes() == b"earlier figure", name

    # A write that fails half-way (a full disk, say) must leave the earlier file and no partial file.
    from matplotlib.figure import Figure

    def failing_savefig(self, handle, **kwargs):
        handle.write(b"half a png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    argv = ["visualize", str(photo), "--model", TINY, "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert "No space left on device" in stderr
    assert out.read_bytes() == b"earlier figure"
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_model_without_classifier_head(capsys, lang, photo, tmp_path):
    # timm builds DINO's tag with num_classes=0, so the model outputs 384 features, not classes.
    lang("en")
    name = "vit_small_patch16_224.dino"
    path = tmp_path / "dino.pth"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), path)
    out = tmp_path / "figure.png"
    code, stdout, stderr = run(capsys, "visualize", str(photo), "--model", name, "--checkpoint", str(path), "--out", str(out))
    assert code == 0, stderr
    assert "no classifier head (num_classes=0); it outputs 384-dimensional features" in stdout
    assert "Top-5" not in stdout
    assert out.is_file()
