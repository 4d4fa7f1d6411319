"""Procedural scenes: one textured object on a cluttered, colourful background, with its mask.

Each scene is a 224 x 224 RGB image drawn from one integer seed with numpy's
``np.random.default_rng`` and Pillow. The object's class is its surface: a pattern (stripes,
checker, dots, ...) at a class-specific orientation, inked in a hue near the class's own hue
on dark paper, on a random outline that carries no class information. The background holds
flat shapes of any colour, a colour gradient and blocky colour noise, none of which depends
on the class, so background patches can carry a class's hue by chance but never its pattern.

Class evidence is spread thin on purpose: inside the object, each 16 x 16 patch of the
ViT's grid shows the class's pattern and ink only with probability ``1 - patch_noise``,
otherwise those of another random class. One patch therefore carries weak evidence, and a
classifier has to gather it from many object patches.

numpy does not promise that ``Generator`` streams stay the same across versions, so the
held-out set is shipped as pixels (:func:`load_heldout`) instead of being regenerated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw

from lab6.i18n import Lab6Error

__all__ = [
    "CLASS_NAMES",
    "CLASS_NAMES_ZH",
    "IMAGE_SIZE",
    "PATCH",
    "GRID",
    "NUM_PATCHES",
    "PATCH_NOISE",
    "HELDOUT_PATH",
    "HELDOUT_SEED_BASE",
    "Scene",
    "make_scene",
    "make_batch",
    "patch_coverage",
    "object_patches",
    "save_heldout",
    "load_heldout",
]

CLASS_NAMES: tuple[str, ...] = ("stripes", "checker", "dots", "rings", "zigzag", "grid", "bricks", "crosses")
CLASS_NAMES_ZH: tuple[str, ...] = ("條紋", "棋盤格", "圓點", "同心圓", "鋸齒紋", "格線", "磚牆紋", "十字紋")

IMAGE_SIZE = 224
PATCH = 16
GRID = IMAGE_SIZE // PATCH  # 14 patches per side
NUM_PATCHES = GRID * GRID  # 196

PATCH_NOISE = 0.25
"""Default probability that an object patch shows another class's pattern."""

HELDOUT_PATH = Path(__file__).resolve().parent / "assets" / "heldout_scenes.npz"
HELDOUT_SEED_BASE = 10_000_000
"""Held-out scenes use seeds from here on; training seeds stay below it."""

_OBJECT_AREA = (0.18, 0.30)  # range of the object's area as a share of the image


@dataclass(frozen=True)
class Scene:
    """One procedural scene."""

    image: np.ndarray
    """[224, 224, 3] uint8 RGB."""
    mask: np.ndarray
    """[224, 224] bool, True on the object's pixels."""
    label: int
    """Index into :data:`CLASS_NAMES`."""
    seed: int = -1
    """The seed :func:`make_scene` drew it from; -1 when unknown."""


# Patterns. Each maps rotated pixel coordinates (u, v) in units of the period, plus the
# radius from the object's centre in the same unit, to a bool "ink" map.
def _stripes(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (u % 1.0) < 0.5


def _checker(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return ((u % 1.0) < 0.5) ^ ((v % 1.0) < 0.5)


def _dots(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    du = (u % 1.0) - 0.5
    dv = (v % 1.0) - 0.5
    return du * du + dv * dv < 0.3**2


def _rings(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (r % 1.0) < 0.5


def _zigzag(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    tooth = np.abs(((u / 1.5) % 1.0) - 0.5) * 2.0  # triangle wave in [0, 1]
    return ((v + tooth) % 1.0) < 0.5


def _grid(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    return ((u % 1.0) < 0.25) | ((v % 1.0) < 0.25)


def _bricks(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    row = np.floor(v / 0.7)
    shifted = u / 1.4 + 0.5 * (row % 2)
    return ((v / 0.7) % 1.0 < 0.25) | (shifted % 1.0 < 0.15)


def _crosses(u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    du = np.abs((u % 1.0) - 0.5)
    dv = np.abs((v % 1.0) - 0.5)
    return ((du < 0.12) & (dv < 0.4)) | ((dv < 0.12) & (du < 0.4))


_PATTERNS: tuple[Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], ...] = (
    _stripes,
    _checker,
    _dots,
    _rings,
    _zigzag,
    _grid,
    _bricks,
    _crosses,
)
assert len(_PATTERNS) == len(CLASS_NAMES) == len(CLASS_NAMES_ZH)

# Base orientation of each class's pattern in radians; scenes jitter it by up to _ANGLE_JITTER.
# Fixed orientations make a patch's class readable from its local frequency content, which a
# small ViT trained from scratch learns much sooner than fully rotated patterns.
_BASE_ANGLE = (0.0, math.pi / 4, 0.0, 0.0, math.pi / 2, 0.0, 0.0, math.pi / 4)
_ANGLE_JITTER = 0.2

_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)  # [224, 224] pixel centres


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _contrasting_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw two colours whose luma differs by at least 70 (of 255), so the pattern is visible."""
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        first = rng.integers(0, 256, size=3)
        second = rng.integers(0, 256, size=3)
        if abs(float((first - second) @ luma)) >= 70:
            return first.astype(np.float32), second.astype(np.float32)


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """Convert HSV (hue in degrees, the others in [0, 1]) to an RGB float array in [0, 255]."""
    chroma = value * saturation
    sector = (hue % 360.0) / 60.0
    second = chroma * (1 - abs(sector % 2 - 1))
    table = [(chroma, second, 0), (second, chroma, 0), (0, chroma, second), (0, second, chroma), (second, 0, chroma), (chroma, 0, second)]
    red, green, blue = table[int(sector) % 6]
    offset = value - chroma
    return np.array([red + offset, green + offset, blue + offset], dtype=np.float32) * 255.0


def _class_ink(label: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a bright ink colour whose hue lies within 15 degrees of the class's own hue."""
    hue = 360.0 * label / len(CLASS_NAMES) + rng.uniform(-15.0, 15.0)
    return _hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))


def _background(rng: np.random.Generator) -> Image.Image:
    """Draw a gradient, 10 to 18 flat clutter shapes and blocky colour noise."""
    start = rng.uniform(0, 255, size=3)
    end = rng.uniform(0, 255, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (_XX * math.cos(angle) + _YY * math.sin(angle)) / IMAGE_SIZE  # [224, 224]
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    pixels = start + (end - start) * ramp[..., None]  # [224, 224, 3]
    canvas = Image.fromarray(pixels.astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(10, 19))):
        kind = int(rng.integers(0, 3))
        width, height = rng.integers(12, 80, size=2)
        x0, y0 = rng.integers(-20, IMAGE_SIZE, size=2)
        box = [int(x0), int(y0), int(x0 + width), int(y0 + height)]
        colour = _random_colour(rng)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            corners = rng.integers(-20, 20, size=(3, 2)) * 2 + np.array([x0, y0])
            draw.polygon([tuple(int(c) for c in p) for p in corners], fill=colour)

    # Blocky colour noise on a 7-pixel lattice, which does not line up with the 16-pixel patches.
    blocks = rng.normal(0.0, 12.0, size=(IMAGE_SIZE // 7, IMAGE_SIZE // 7, 3))  # [32, 32, 3]
    noise = np.repeat(np.repeat(blocks, 7, axis=0), 7, axis=1)  # [224, 224, 3]
    pixels = np.asarray(canvas, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _outline(rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """Draw a class-free outline (ellipse, rounded box or blob); return its mask and centre."""
    area = rng.uniform(*_OBJECT_AREA) * IMAGE_SIZE * IMAGE_SIZE
    radius = math.sqrt(area / math.pi)
    aspect = rng.uniform(0.7, 1.4)
    rx, ry = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
    reach = max(rx, ry) * 1.2
    cx = rng.uniform(reach * 0.8, IMAGE_SIZE - reach * 0.8)
    cy = rng.uniform(reach * 0.8, IMAGE_SIZE - reach * 0.8)

    layer = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(layer)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif kind == 1:
        # A box with the same area as the ellipse: half-sides scaled by sqrt(pi) / 2.
        hx, hy = rx * 0.886, ry * 0.886
        draw.rounded_rectangle([cx - hx, cy - hy, cx + hx, cy + hy], radius=int(min(hx, hy) * 0.4), fill=255)
    else:
        lobes = int(rng.integers(2, 6))
        depth = rng.uniform(0.1, 0.25)
        phase = rng.uniform(0, 2 * math.pi)
        theta = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        scale = 1.0 + depth * np.sin(lobes * theta + phase)
        points = np.stack([cx + rx * scale * np.cos(theta), cy + ry * scale * np.sin(theta)], axis=1)
        draw.polygon([tuple(p) for p in points.tolist()], fill=255)
    return np.asarray(layer) > 0, cx, cy


def _pattern(label: int, rng: np.random.Generator, where: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """Render class ``label``'s pattern with a random period, angle and phase at the pixels ``where``.

    ``where`` is a [224, 224] bool mask; the result is a bool array of its ``where.sum()`` pixels.
    """
    period = rng.uniform(9.0, 13.0)
    angle = _BASE_ANGLE[label] + rng.uniform(-_ANGLE_JITTER, _ANGLE_JITTER)
    du, dv = rng.uniform(0, 1, size=2)
    x, y = _XX[where] - cx, _YY[where] - cy
    u = (x * math.cos(angle) + y * math.sin(angle)) / period + du
    v = (-x * math.sin(angle) + y * math.cos(angle)) / period + dv
    r = np.sqrt(x * x + y * y) / period
    return _PATTERNS[label](u, v, r)  # [where.sum()] bool


def make_scene(
    seed: int, label: Optional[int] = None, patch_noise: float = PATCH_NOISE, colour_cue: bool = True
) -> Scene:
    """Draw the scene of ``seed``; the same arguments always give the same scene.

    Args:
        seed: any non-negative integer. Seeds from :data:`HELDOUT_SEED_BASE` on are kept
            for the held-out set.
        label: the object's class, an index into :data:`CLASS_NAMES`; drawn from the seed
            when None.
        patch_noise: probability in [0, 1) that an object patch of the 14 x 14 grid shows
            the pattern (and ink colour) of another random class.
        colour_cue: draw the pattern's ink in the class's hue on dark paper; otherwise both
            colours are random and only the pattern identifies the class.
    """
    if label is not None and not 0 <= int(label) < len(CLASS_NAMES):
        raise ValueError(f"label must lie in 0..{len(CLASS_NAMES) - 1}, got {label}")
    if not 0.0 <= patch_noise < 1.0:
        raise ValueError(f"patch_noise must lie in [0, 1), got {patch_noise}")
    rng = np.random.default_rng(int(seed))
    drawn = int(rng.integers(0, len(CLASS_NAMES)))
    label = drawn if label is None else int(label)

    canvas = _background(rng)
    mask, cx, cy = _outline(rng)

    # Per patch of the grid: which class's pattern it shows.
    cell_class = np.full((GRID, GRID), label)
    swapped = rng.random((GRID, GRID)) < patch_noise
    others = rng.integers(1, len(CLASS_NAMES), size=(GRID, GRID))
    cell_class = np.where(swapped, (label + others) % len(CLASS_NAMES), cell_class)  # [14, 14]
    per_pixel_class = np.repeat(np.repeat(cell_class, PATCH, axis=0), PATCH, axis=1)  # [224, 224]

    pixels = np.asarray(canvas, dtype=np.float32).copy()  # [224, 224, 3]
    if colour_cue:
        paper = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 1), rng.uniform(0.05, 0.35))
        inks = {cls: _class_ink(cls, rng) for cls in range(len(CLASS_NAMES))}
    else:
        first, paper = _contrasting_pair(rng)
        inks = {cls: first for cls in range(len(CLASS_NAMES))}
    inside_cells = np.unique(per_pixel_class[mask])
    for cls in inside_cells.tolist():
        shown = mask & (per_pixel_class == cls)
        ink = _pattern(int(cls), rng, shown, cx, cy)  # [shown.sum()] bool
        pixels[shown] = np.where(ink[:, None], inks[cls], paper)
    image = np.clip(pixels, 0, 255).astype(np.uint8)
    return Scene(image=image, mask=mask, label=label, seed=int(seed))


def make_batch(
    seeds: "np.ndarray | list[int]", patch_noise: float = PATCH_NOISE, colour_cue: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one scene per seed; return images [B, 224, 224, 3] uint8, masks [B, 224, 224] and labels [B]."""
    scenes = [make_scene(int(s), patch_noise=patch_noise, colour_cue=colour_cue) for s in seeds]
    images = np.stack([s.image for s in scenes])
    masks = np.stack([s.mask for s in scenes])
    labels = np.array([s.label for s in scenes], dtype=np.int64)
    return images, masks, labels


def patch_coverage(mask: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """Return the share of each patch's pixels on the object, row-major: [H/patch * W/patch] float.

    ``mask`` is [H, W] or [B, H, W] bool; a batch gives [B, H/patch * W/patch]. For a 224 x 224
    mask and patch 16 that is 196 values, patch p at row ``p // 14``, column ``p % 14``.
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3) or mask.shape[-1] % patch or mask.shape[-2] % patch:
        raise ValueError(f"mask must be [H, W] or [B, H, W] with sides divisible by {patch}, got {mask.shape}")
    height, width = mask.shape[-2:]
    blocks = mask.reshape(*mask.shape[:-2], height // patch, patch, width // patch, patch)
    share = blocks.mean(axis=(-3, -1), dtype=np.float64)  # [..., H/patch, W/patch]
    return share.reshape(*mask.shape[:-2], -1)


def object_patches(mask: np.ndarray, threshold: float = 0.5, patch: int = PATCH) -> np.ndarray:
    """Return which patches count as object: at least ``threshold`` of their pixels on it."""
    return patch_coverage(mask, patch) >= threshold


def save_heldout(scenes: list[Scene], path: Path = HELDOUT_PATH) -> None:
    """Store scenes as a compressed npz that numpy alone can read back.

    Images are stored as byte differences along each row (as PNG's Sub filter does), which
    the flat colours of these scenes turn into long runs that zlib compresses well.
    """
    images = np.stack([s.image for s in scenes])  # [N, 224, 224, 3] uint8
    deltas = np.diff(images, axis=2, prepend=np.zeros_like(images[:, :, :1]))  # wraps modulo 256
    masks = np.packbits(np.stack([s.mask for s in scenes]), axis=-1)  # [N, 224, 28] uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        image_deltas=deltas,
        masks=masks,
        labels=np.array([s.label for s in scenes], dtype=np.int64),
        seeds=np.array([s.seed for s in scenes], dtype=np.int64),
        class_names=np.array(CLASS_NAMES),
    )


def load_heldout(path: Path = HELDOUT_PATH) -> list[Scene]:
    """Load the shipped held-out scenes (seeds from :data:`HELDOUT_SEED_BASE` on).

    Raises :class:`~lab6.i18n.Lab6Error` with key ``heldout.missing`` when the file is absent.
    """
    if not Path(path).is_file():
        raise Lab6Error("heldout.missing", path=path)
    with np.load(path) as data:
        images = np.cumsum(data["image_deltas"], axis=2, dtype=np.uint8)  # undo the row deltas, modulo 256
        masks = np.unpackbits(data["masks"], axis=-1)[..., :IMAGE_SIZE].astype(bool)
        labels = data["labels"]
        seeds = data["seeds"]
    return [
        Scene(image=images[i], mask=masks[i], label=int(labels[i]), seed=int(seeds[i])) for i in range(len(labels))
    ]
