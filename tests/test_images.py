"""Tests of lab6.images: every common image mode, EXIF rotation, and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from lab6.i18n import ImageError
from lab6.images import load_image, model_transforms, open_rgb, prepare

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@pytest.fixture(scope="module")
def deit() -> torch.nn.Module:
    return timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()


def gradient(width: int, height: int) -> np.ndarray:
    """[height, width, 3] uint8 picture whose colour differs in every pixel row and column."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1).astype(np.uint8)


def test_view_matches_timm_transform(deit, tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(gradient(400, 300)).save(path)
    prepared = load_image(path, deit)
    assert prepared.tensor.shape == (1, 3, 224, 224)
    assert prepared.view.shape == (224, 224, 3)
    assert prepared.view.dtype == np.uint8

    # DeiT's config: bicubic resize of the short side to 248 (224 / 0.9), then a 224 center crop.
    resized = TF.resize(Image.open(path), 248, interpolation=TF.InterpolationMode.BICUBIC)
    expected_view = np.asarray(TF.center_crop(resized, 224))
    np.testing.assert_array_equal(prepared.view, expected_view)

    # The tensor is exactly the normalised view, so patches drawn on the view line up.
    from_view = (torch.from_numpy(prepared.view).permute(2, 0, 1).float() / 255 - MEAN) / STD
    torch.testing.assert_close(prepared.tensor[0], from_view, rtol=0, atol=1e-5)


def test_full_timm_transform_agrees(deit, tmp_path):
    from timm.data import create_transform, resolve_data_config

    image = Image.fromarray(gradient(300, 500))
    full = create_transform(**resolve_data_config({}, model=deit))
    torch.testing.assert_close(prepare(image, deit).tensor[0], full(image), rtol=0, atol=1e-6)
    geometry, to_tensor = model_transforms(deit)
    assert geometry(image).size == (224, 224)


def test_small_image_is_upscaled(deit):
    prepared = prepare(Image.fromarray(gradient(10, 12)), deit)
    assert prepared.view.shape == (224, 224, 3)


def test_rgba_transparent_becomes_white(tmp_path):
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 200  # red, fully transparent in the left half
    pixels[:, 4:, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, mode="RGBA").save(path)
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (8, 8, 3)
    assert (rgb[:, :4] == 255).all()
    assert (rgb[:, 4:] == [200, 0, 0]).all()


def test_grayscale_and_palette(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((6, 6), 90, dtype=np.uint8), mode="L").save(gray)
    assert (np.asarray(open_rgb(gray)) == 90).all()

    palette = tmp_path / "palette.gif"
    Image.fromarray(gradient(16, 16)).convert("P").save(palette)
    assert np.asarray(open_rgb(palette)).shape == (16, 16, 3)


def test_sixteen_bit_grayscale_is_scaled(tmp_path):
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (1, 3, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])


def test_float_image_is_scaled():
    from lab6.images import to_rgb

    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(np.asarray(to_rgb(image))[0, :, 1], [0, 128, 255])


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(path)
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (10, 20, 3)
    assert rgb[..., 0].mean() > 200  # cyan 0, magenta and yellow full: red
    assert rgb[..., 1].mean() < 60


def test_exif_rotation_is_applied(tmp_path):
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, :5] = 255  # white stripe on the left edge, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: the viewer rotates 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    upright = np.asarray(open_rgb(path))
    assert upright.shape == (30, 10, 3)
    assert upright[:5].mean() > 200  # the left stripe is now on top
    assert upright[-5:].mean() < 50


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_missing_file(tmp_path, lang, language):
    lang(language)
    with pytest.raises(ImageError) as caught:
        open_rgb(tmp_path / "absent.jpg")
    assert caught.value.key == "image.missing"
    assert "absent.jpg" in str(caught.value)
    assert ("not found" if language == "en" else "找不到圖片檔") in str(caught.value)


def test_folder(tmp_path):
    with pytest.raises(ImageError) as caught:
        open_rgb(tmp_path)
    assert caught.value.key == "image.is_directory"


def test_text_file(tmp_path, lang):
    lang("en")
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(ImageError) as caught:
        open_rgb(path)
    assert caught.value.key == "image.not_image"
    assert "Pillow" in str(caught.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image(tmp_path, lang, suffix):
    lang("en")
    full = tmp_path / f"full{suffix}"
    Image.fromarray(gradient(300, 300)).save(full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageError) as caught:
        open_rgb(cut)
    assert caught.value.key == "image.unreadable"
    assert "truncated" in str(caught.value)


def test_sample_photo_is_bundled():
    from lab6.cli import SAMPLE_PHOTO

    assert SAMPLE_PHOTO.is_file()
    assert open_rgb(SAMPLE_PHOTO).size == (512, 600)
    assert (Path(SAMPLE_PHOTO).parent / "README.md").read_text().count("grace_hopper.jpg") >= 1


def test_name_too_long(tmp_path, lang):
    lang("en")
    with pytest.raises(ImageError) as caught:
        open_rgb(tmp_path / ("x" * 300 + ".png"))
    assert caught.value.key == "image.inaccessible"
    assert "File name too long" in str(caught.value)


def test_permission_error_is_inaccessible(tmp_path, lang, monkeypatch):
    # Root reads every file, so Pillow's open is replaced to raise what a non-root user gets.
    lang("en")
    path = tmp_path / "locked.png"
    Image.new("RGB", (4, 4)).save(path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ImageError) as caught:
        open_rgb(path)
    assert caught.value.key == "image.inaccessible"
    assert "read permission" in str(caught.value)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (10000, 50), (50, 10000)])
def test_extreme_sizes_prepared(deit, width, height):
    image = Image.new("RGB", (width, height), (10, 200, 30))
    prepared = prepare(image, deit)
    assert prepared.tensor.shape == (1, 3, 224, 224)
    assert prepared.view.shape == (224, 224, 3)
    assert (prepared.view == (10, 200, 30)).all()


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    pixels = np.asarray(open_rgb(path))
    assert tuple(pixels[16, 16]) == (255, 0, 0)


def test_unicode_path_with_spaces(tmp_path):
    folder = tmp_path / "my pictures 圖片"
    folder.mkdir()
    path = folder / "照 片.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    assert tuple(np.asarray(open_rgb(path))[0, 0]) == (1, 2, 3)
