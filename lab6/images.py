"""Open an image file and preprocess it the way timm does for a given model.

:func:`load_image` returns both the model's input tensor and the RGB picture the model
actually sees (after resizing and cropping), so patch boundaries drawn on that picture line
up with the model's patches.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from lab6.i18n import ImageError

__all__ = ["PreparedImage", "open_rgb", "to_rgb", "model_transforms", "prepare", "load_image"]

_logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

_BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model, and the picture that tensor was made from."""

    tensor: torch.Tensor
    """[1, 3, H, W] normalised model input."""
    view: np.ndarray
    """[H, W, 3] uint8 RGB picture after timm's resize and crop; ``tensor`` is its normalised copy."""


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grayscale image to 8-bit ``L``."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.size and values.max() <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
        top = 65535.0  # 16-bit samples; PIL opens 16-bit PNGs as mode "I"
    else:
        top = 255.0
    scaled = np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB copy of any Pillow image, with transparency composited on white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _high_depth_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def open_rgb(path: PathLike) -> Image.Image:
    """Open an image file, apply its EXIF orientation and return it as RGB.

    Raises:
        ImageError: the path is missing, a folder or not readable, or the file is not a
            complete image that Pillow can decode.
    """
    path = Path(path).expanduser()
    try:
        if not path.exists():
            raise ImageError("image.missing", path=path)
        if path.is_dir():
            raise ImageError("image.is_directory", path=path)
    except OSError as error:  # e.g. a name longer than the file system allows
        raise ImageError("image.inaccessible", path=path, error=error) from None
    try:
        with Image.open(path) as image:
            image.load()  # Image.open is lazy; decoding here surfaces truncated files
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
    except UnidentifiedImageError:
        raise ImageError("image.not_image", path=path) from None
    except Image.DecompressionBombError as error:
        raise ImageError("image.too_large", path=path, error=error) from None
    except PermissionError as error:
        raise ImageError("image.inaccessible", path=path, error=error) from None
    except (OSError, ValueError, SyntaxError) as error:
        # Pillow raises OSError for truncated data and SyntaxError for some malformed headers.
        raise ImageError("image.unreadable", path=path, error=error) from None


def model_transforms(model: nn.Module):
    """Return timm's eval transform for ``model``, split into (geometry, to_tensor).

    ``geometry`` resizes and crops a PIL image; ``to_tensor`` converts and normalises it. Both
    come from ``timm.data.create_transform`` with the model's own data config.
    """
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms as T

    config = resolve_data_config({}, model=model)
    transform = create_transform(**config, is_training=False)
    steps = list(transform.transforms) if isinstance(transform, T.Compose) else [transform]
    split = next(
        (i for i, step in enumerate(steps) if type(step).__name__ in ("ToTensor", "MaybeToTensor")),
        len(steps),
    )
    return T.Compose(steps[:split]), T.Compose(steps[split:])


def prepare(image: Image.Image, model: nn.Module) -> PreparedImage:
    """Preprocess an RGB PIL image for ``model`` with timm's transform."""
    geometry, to_tensor = model_transforms(model)
    seen = geometry(to_rgb(image))  # PIL, e.g. 224 x 224 after resize and center crop
    view = np.asarray(seen, dtype=np.uint8).copy()  # [H, W, 3]
    tensor = to_tensor(seen).unsqueeze(0)  # [1, 3, H, W]
    return PreparedImage(tensor=tensor, view=view)


def load_image(path: PathLike, model: nn.Module) -> PreparedImage:
    """Open ``path`` (any format Pillow reads) and preprocess it for ``model``."""
    image = open_rgb(path)
    _logger.info("opened %s: %dx%d", path, image.width, image.height)
    return prepare(image, model)
