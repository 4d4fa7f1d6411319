"""The bundled teaching model: a small timm ViT trained on :mod:`lab6.scenes`, shipped in ``lab6/assets/``.

Its token layout is DeiT-S's: 224 x 224 input, patch 16 (a 14 x 14 grid), one CLS token,
12 blocks and ``global_pool='token'``. The lab's schedule therefore gives the same token
counts (197 -> 140 -> 100 -> 72 with fusion) as on DeiT-S. Only the width is smaller
(``embed_dim`` 96, 3 heads), so the weights stay a few MB and run on a laptop CPU.

The weights are stored in float16 in a safetensors file whose metadata (a JSON string under
the key ``"lab6"``) records the architecture keyword arguments, class names, normalisation
and the training recipe. Tensor names are timm's own ``state_dict`` keys.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import torch
from timm.models.vision_transformer import VisionTransformer

from lab6.i18n import WeightsError
from lab6.scenes import CLASS_NAMES, CLASS_NAMES_ZH, IMAGE_SIZE, PATCH

__all__ = [
    "BUNDLED_PATH",
    "ARCH_KWARGS",
    "MEAN",
    "STD",
    "METADATA_KEY",
    "create_scenes_vit",
    "scenes_pretrained_cfg",
    "save_bundled",
    "read_metadata",
    "load_bundled_model",
]

logger = logging.getLogger(__name__)

BUNDLED_PATH = Path(__file__).resolve().parent / "assets" / "scenes_vit.safetensors"
METADATA_KEY = "lab6"

ARCH_KWARGS: dict[str, Any] = {
    "img_size": IMAGE_SIZE,
    "patch_size": PATCH,
    "embed_dim": 96,
    "depth": 12,
    "num_heads": 3,
    "mlp_ratio": 4.0,
    "class_token": True,
    "global_pool": "token",
}
"""Keyword arguments of timm's ``VisionTransformer``, ``num_classes`` aside."""

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def scenes_pretrained_cfg(num_classes: int, class_names: Optional[list[str]] = None) -> dict[str, Any]:
    """Build the ``pretrained_cfg`` that timm's ``resolve_data_config(model=model)`` reads.

    Scenes are drawn at 224 x 224, so evaluation uses the whole image (``crop_pct`` 1.0).
    """
    names = list(class_names) if class_names is not None else list(CLASS_NAMES[:num_classes])
    return {
        "architecture": "scenes_vit",
        "input_size": (3, IMAGE_SIZE, IMAGE_SIZE),
        "interpolation": "bicubic",
        "mean": MEAN,
        "std": STD,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "num_classes": num_classes,
        "label_names": names,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }


def create_scenes_vit(num_classes: int = len(CLASS_NAMES), **overrides: Any) -> VisionTransformer:
    """Build the bundled architecture with random weights.

    ``overrides`` replace entries of :data:`ARCH_KWARGS` (for recipe experiments only; the
    token layout checks in :func:`load_bundled_model` expect the defaults' patch grid).
    """
    kwargs = {**ARCH_KWARGS, **overrides}
    model = VisionTransformer(num_classes=num_classes, **kwargs)
    model.pretrained_cfg = scenes_pretrained_cfg(num_classes)
    return model


def save_bundled(model: VisionTransformer, path: Path, recipe: dict[str, Any], arch_kwargs: dict[str, Any]) -> None:
    """Write the model's weights in float16 with the metadata :func:`load_bundled_model` reads."""
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "arch_kwargs": arch_kwargs,
        "num_classes": model.num_classes,
        "class_names": list(CLASS_NAMES[: model.num_classes]),
        "class_names_zh": list(CLASS_NAMES_ZH[: model.num_classes]),
        "mean": list(MEAN),
        "std": list(STD),
        "recipe": recipe,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})


def read_metadata(path: Path = BUNDLED_PATH) -> dict[str, Any]:
    """Return the JSON metadata of a bundled weights file; raise WeightsError if it is unusable."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError("bundled.missing", path=path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as error:  # safetensors raises several types for damaged headers
        raise WeightsError("bundled.corrupt", path=path, reason=str(error) or type(error).__name__) from error
    try:
        meta = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise WeightsError("bundled.bad_metadata", path=path, field=METADATA_KEY) from None
    for field in ("arch_kwargs", "num_classes", "class_names", "mean", "std"):
        if field not in meta:
            raise WeightsError("bundled.bad_metadata", path=path, field=field)
    return meta


def load_bundled_model(path: Path = BUNDLED_PATH) -> VisionTransformer:
    """Load the bundled model in eval mode and float32, with its ``pretrained_cfg`` set.

    ``model.pretrained_cfg["label_names"]`` holds the English class names and
    ``["label_names_zh"]`` the Traditional Chinese ones; ``["recipe"]`` records how it was
    trained. Raises :class:`~lab6.i18n.WeightsError` when the file is missing, damaged or
    does not fit the architecture.
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except Exception as error:  # damaged tensor data after a readable header
        raise WeightsError("bundled.corrupt", path=path, reason=str(error) or type(error).__name__) from error

    num_classes = int(meta["num_classes"])
    try:
        model = VisionTransformer(num_classes=num_classes, **meta["arch_kwargs"])
    except TypeError as error:
        raise WeightsError("bundled.mismatch", path=path, reason=str(error)) from None
    state = {k: v.float() for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = str(error).splitlines()[0] if str(error) else "state_dict mismatch"
        raise WeightsError("bundled.mismatch", path=path, reason=reason) from None

    cfg = scenes_pretrained_cfg(num_classes, meta["class_names"])
    cfg["mean"] = tuple(meta["mean"])
    cfg["std"] = tuple(meta["std"])
    cfg["label_names_zh"] = list(meta.get("class_names_zh", []))
    cfg["recipe"] = meta.get("recipe", {})
    model.pretrained_cfg = cfg
    logger.info("loaded bundled model from %s (%d classes)", path, num_classes)
    return model.eval()
