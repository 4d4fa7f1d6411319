"""The per-layer figure: which patches each pruning block still carries.

Each panel shows the model's input picture with every patch that no longer has its own
token painted black. Patches that survive only inside a fused token are drawn in dim grey,
which stays distinct from the saturated colours of the scenes, where a coloured tint could
match an object's colour. The
last panel, the counterfactual, draws the last pruning block's indices as patch ids without
:func:`lab6.index.get_real_idx`. Those indices are positions in the previous block's output,
all below that block's token count, so they crowd toward the top rows of the grid.

Outside a notebook the figure is a plain :class:`matplotlib.figure.Figure` that pyplot never
sees, so no GUI backend is involved; :func:`save_figure` renders it with Agg. Inside an
IPython kernel it is made through pyplot, so the notebook's inline backend displays it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from matplotlib.figure import Figure

from lab6.evit import EViTOutput
from lab6.i18n import Lab6Error
from lab6.index import fused_patch_mask, get_real_idx, kept_patch_mask, patch_owner

__all__ = ["FUSED_BRIGHTNESS", "FUSED_FLOOR", "PanelMasks", "pruning_masks", "counterfactual_mask", "render_panel", "plot_pruning", "save_figure"]

FUSED_BRIGHTNESS = 0.4
"""Factor on a fused patch's luminance: fused patches stay darker than kept ones."""
FUSED_FLOOR = 48
"""Grey level added to every fused patch, so even a black or saturated blue patch
(luminance near 0) stays distinguishable from a dropped, black patch."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 weights, as Pillow's "L" mode uses
_PANEL_INCHES = 2.4


@dataclass(frozen=True)
class PanelMasks:
    """Patch masks of one pruning block's output, for one image."""

    block: int
    """0-based index of the pruning block."""
    kept: np.ndarray
    """[P] bool: patches still carried as their own token."""
    fused: np.ndarray
    """[P] bool: patches that live inside a fused token."""


def _check_sample(output: EViTOutput, sample: int) -> None:
    batch = output.logits.shape[0]
    if not 0 <= sample < batch:
        raise Lab6Error("figure.bad_sample", sample=sample, batch=batch)


def _check_fuse(output: EViTOutput, fuse: bool) -> None:
    # A wrong flag would read the records' indices against the wrong token layout: an
    # index error with fuse=False, or dropped patches drawn as fused with fuse=True.
    made_with = {record.fuse for record in output.records}
    if made_with and made_with != {bool(fuse)}:
        raise Lab6Error("figure.fuse_mismatch", fuse=bool(fuse), made_with=made_with.pop())


def pruning_masks(output: EViTOutput, fuse: bool, sample: int = 0, num_patches: int = 196) -> list[PanelMasks]:
    """Return the kept and fused patch masks after every pruning block, for image ``sample``.

    Raises:
        Lab6Error: ``sample`` is outside the batch, or ``fuse`` differs from the setting
            the model ran with.
    """
    _check_sample(output, sample)
    _check_fuse(output, fuse)
    idxs = [idx[sample : sample + 1].cpu() for idx in output.kept_idx]  # each [1, K_i]
    real = get_real_idx(idxs, fuse, num_patches)
    owners = patch_owner(idxs, fuse, num_patches) if fuse else [None] * len(idxs)
    panels = []
    for record, real_idx, owner in zip(output.records, real, owners):
        kept = kept_patch_mask(real_idx, num_patches)[0]  # [P]
        fused = fused_patch_mask(owner, real_idx, num_patches)[0] if owner is not None else torch.zeros_like(kept)
        panels.append(PanelMasks(block=record.block, kept=kept.numpy(), fused=fused.numpy()))
    return panels


def counterfactual_mask(output: EViTOutput, sample: int = 0, num_patches: int = 196) -> np.ndarray:
    """Return a [P] bool mask that reads the last pruning block's raw indices as patch ids.

    This is the mistake :func:`lab6.index.get_real_idx` exists to prevent: the indices are
    positions among that block's input tokens, not patch positions.
    """
    _check_sample(output, sample)
    raw = output.kept_idx[-1][sample].cpu().long()  # [K]
    mask = torch.zeros(num_patches, dtype=torch.bool)
    mask[raw[raw < num_patches]] = True
    return mask.numpy()


def _patch_pixels(mask: np.ndarray, grid: tuple[int, int], patch_size: int) -> np.ndarray:
    """Expand a [P] patch mask to an [H, W] pixel mask (patches numbered row-major)."""
    return np.asarray(mask, dtype=bool).reshape(grid).repeat(patch_size, axis=0).repeat(patch_size, axis=1)


def render_panel(
    view: np.ndarray,
    kept: Union[np.ndarray, torch.Tensor],
    fused: Optional[Union[np.ndarray, torch.Tensor]] = None,
    patch_size: int = 16,
) -> np.ndarray:
    """Draw one panel: kept patches as in ``view``, fused ones in dim grey, the rest black.

    Args:
        view: [H, W, 3] uint8 picture the model saw; H and W are multiples of ``patch_size``.
        kept: [P] bool, P = (H / patch_size) * (W / patch_size), patches numbered row-major.
        fused: [P] bool, patches inside a fused token; None for none.

    Returns:
        A new [H, W, 3] uint8 array; ``view`` is not modified.
    """
    view = np.asarray(view)
    if view.ndim != 3 or view.shape[2] != 3 or view.dtype != np.uint8:
        raise ValueError(f"view must be an [H, W, 3] uint8 array, got shape {view.shape} and dtype {view.dtype}")
    grid = (view.shape[0] // patch_size, view.shape[1] // patch_size)
    if grid[0] * patch_size != view.shape[0] or grid[1] * patch_size != view.shape[1]:
        raise ValueError(f"view size {view.shape[:2]} is not a multiple of the patch size {patch_size}")
    kept = np.asarray(kept, dtype=bool).reshape(-1)
    if kept.size != grid[0] * grid[1]:
        raise ValueError(f"kept has {kept.size} entries but the view has {grid[0] * grid[1]} patches")

    panel = np.zeros_like(view)  # [H, W, 3]
    kept_px = _patch_pixels(kept, grid, patch_size)  # [H, W]
    panel[kept_px] = view[kept_px]
    if fused is not None:
        fused_px = _patch_pixels(np.asarray(fused, dtype=bool).reshape(-1), grid, patch_size) & ~kept_px
        grey = FUSED_FLOOR + view[fused_px].astype(np.float32) @ _LUMA * FUSED_BRIGHTNESS  # [n]
        panel[fused_px] = grey.round().astype(np.uint8)[:, None]
    return panel


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "ipykernel" in sys.modules


def _new_figure(width: float, height: float) -> Figure:
    if _in_notebook():
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width, height))
        plt.close(fig)  # the notebook shows the returned figure once, not again at cell end
        return fig
    return Figure(figsize=(width, height))


def _panel_title(block: int, masks: PanelMasks) -> str:
    title = f"after block {block + 1}: {int(masks.kept.sum())} kept"
    if masks.fused.any():
        title += " + fused"
    return title


def plot_pruning(
    view: np.ndarray,
    output: EViTOutput,
    fuse: bool,
    sample: int = 0,
    counterfactual: bool = True,
    patch_size: int = 16,
) -> Figure:
    """Draw the input and the patches each pruning block keeps, in one row of panels.

    Args:
        view: [H, W, 3] uint8 picture the model saw (``PreparedImage.view``).
        output: the model's :class:`~lab6.evit.EViTOutput` for a batch containing that picture.
        fuse: whether the model fused dropped tokens (as passed to ``apply_evit``).
        sample: which image of the batch to draw.
        counterfactual: add a panel with the last block's raw indices read as patch ids.
            It is drawn only when there are at least two pruning blocks, because the first
            block's indices are already patch ids.
        patch_size: the model's patch size in pixels.

    Returns:
        The figure; text in it is ASCII.
    """
    grid_patches = (view.shape[0] // patch_size) * (view.shape[1] // patch_size)
    if output.records and output.records[0].tokens_in - 1 != grid_patches:
        # The first pruning block receives every patch, because no fused token exists before it.
        raise Lab6Error(
            "figure.view_mismatch", shape=tuple(view.shape), patch_size=patch_size,
            grid=grid_patches, patches=output.records[0].tokens_in - 1,
        )
    panels = pruning_masks(output, fuse, sample, grid_patches)
    show_counterfactual = counterfactual and len(panels) >= 2

    images = [(np.asarray(view), "input")]
    for masks in panels:
        images.append((render_panel(view, masks.kept, masks.fused, patch_size), _panel_title(masks.block, masks)))
    if show_counterfactual:
        wrong = counterfactual_mask(output, sample, grid_patches)
        last = panels[-1].block + 1
        images.append((render_panel(view, wrong, None, patch_size), f"block {last} without get_real_idx\n(raw indices: wrong)"))
    if not panels:
        images[0] = (images[0][0], "input (no pruning)")

    fig = _new_figure(_PANEL_INCHES * len(images), _PANEL_INCHES + 0.7)
    axes = fig.subplots(1, len(images), squeeze=False)[0]
    for ax, (image, title) in zip(axes, images):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    if panels:
        if fuse:
            legend = "dim grey: patch lives only inside the fused token"
        else:
            legend = "black: token dropped"
        fig.text(0.5, 0.02, legend, ha="center", va="bottom", fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.08, wspace=0.05)
    return fig


def save_figure(fig: Figure, path: Union[str, os.PathLike], dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as PNG and return the absolute path.

    The PNG is written to a temporary file in the same folder and then renamed over
    ``path``, so a failed write (a full disk, say) leaves an existing file at ``path`` intact.

    Raises:
        OSError: the folder is missing or not writable, or the write failed.
    """
    path = Path(path).expanduser().resolve()
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    # os.open applies the umask to 0o666, so the figure gets the usual permissions of a new file.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            fig.savefig(handle, format="png", dpi=dpi)  # a canvas-less Figure renders PNG through Agg
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
