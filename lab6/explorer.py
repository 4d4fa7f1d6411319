"""An ipywidgets panel for exploring EViT keep rates live in a notebook.

``explore()`` returns an :class:`ExplorerPanel`; as the last expression of a cell it shows
the panel. Its controls set the keep rate of each block (sliders, a schedule string, and
preset buttons), fusion, the image (held-out scenes, bundled photos, an upload) and the
model. Every change runs the pruned and the unpruned model on the image and shows the
per-layer kept-patch panels, the token count after every block, GFLOPs against the unpruned
model, and the top-5 prediction with its agreement with the unpruned model.

Sliders send their value only when released (``continuous_update=False``), and preset
buttons and schedule strings set all sliders first and then update once, so a drag costs
one update. Every control is an attribute of the panel, so tests drive it by setting values.
"""

from __future__ import annotations

import html
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from timm.models.vision_transformer import VisionTransformer

from lab6.figure import pruning_masks, render_panel
from lab6.flops import count_flops, temporary_keep_rate
from lab6.i18n import Lab6Error, language, tr
from lab6.images import PreparedImage, open_rgb, prepare, to_rgb
from lab6.schedule import LAB_SCHEDULE, ScheduleLike, format_schedule, parse_keep_rate

__all__ = ["ExplorerPanel", "ExplorerState", "ExplorerError", "explore", "DEIT_SMALL"]

_logger = logging.getLogger(__name__)

DEIT_SMALL = "deit_small_patch16_224"
_ASSETS = Path(__file__).resolve().parent / "assets"
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_SCENES_PER_CLASS = 2
_MAX_PANELS = 13  # the input and up to 12 pruning blocks


class ExplorerError(Lab6Error):
    """Invalid input to the explorer, such as an empty or unreadable upload."""


@dataclass(frozen=True)
class ExplorerState:
    """The numbers behind the panel's outputs after a successful update."""

    model: str
    image: str
    """Key of the chosen image, e.g. ``"scene:3"``."""
    schedule: tuple[float, ...]
    fuse: bool
    token_counts: tuple[int, ...]
    """Tokens after every block, CLS and fused token included."""
    kept_patches: tuple[int, ...]
    """Patches still carried as their own token after each pruning block."""
    gflops: float
    gflops_unpruned: float
    top5: tuple[tuple[int, float], ...]
    """(class index, probability) of the pruned model, best first."""
    unpruned_top1: int
    agrees: bool
    """Whether the pruned and the unpruned model pick the same top-1 class."""
    seconds: float
    """Wall time of the update."""


@dataclass
class _LoadedModel:
    model: VisionTransformer
    class_names: tuple[str, ...]
    device: torch.device


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _decode_upload(name: str, content: bytes) -> Image.Image:
    """Decode uploaded bytes as Pillow does for files, with the same EXIF and mode handling."""
    if not content:
        raise ExplorerError("explorer.upload_empty", name=name)
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()  # decode now, so a truncated file fails here
            return to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise ExplorerError("explorer.upload_not_image", name=name) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ExplorerError("explorer.upload_unreadable", name=name, error=error) from None


def _scene_class_names(names: Sequence[str]) -> tuple[str, ...]:
    """Return class names for display: the Traditional Chinese name first when zh-TW is selected."""
    from lab6.scenes import CLASS_NAMES, CLASS_NAMES_ZH

    if language() == "zh-TW" and tuple(names) == tuple(CLASS_NAMES[: len(names)]):
        return tuple(f"{zh}（{en}）" for zh, en in zip(CLASS_NAMES_ZH, names))
    return tuple(names)


def _load_named_model(name: str) -> _LoadedModel:
    from lab6.device import pick_device
    from lab6.weights import load_model

    model, info = load_model(name)
    names = _scene_class_names(info.class_names) if info.dataset == "scenes" else info.class_names
    device = pick_device()
    return _LoadedModel(model=model.to(device).eval(), class_names=tuple(names), device=device)


def _custom_model(model: VisionTransformer, class_names: Optional[Sequence[str]]) -> _LoadedModel:
    if class_names is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        class_names = cfg.get("label_names") or [f"class {i}" for i in range(model.num_classes)]
    device = next(model.parameters()).device
    return _LoadedModel(model=model.eval(), class_names=tuple(class_names), device=device)


def _deit_available() -> bool:
    from lab6.weights import find_cached_weights

    try:
        return find_cached_weights(DEIT_SMALL) is not None
    except Exception:  # a broken cache folder must not stop the panel from opening
        _logger.exception("could not look up cached %s weights", DEIT_SMALL)
        return False


def _bundled_photos() -> list[Path]:
    return sorted(p for p in _ASSETS.glob("*") if p.suffix.lower() in _PHOTO_SUFFIXES)


def _pick_scenes(scenes: Sequence, per_class: int) -> list[tuple[int, object]]:
    """Return (index, scene) pairs: the first ``per_class`` scenes of each class, in file order."""
    per_label: dict[int, int] = {}
    chosen = []
    for index, scene in enumerate(scenes):
        if per_label.get(scene.label, 0) < per_class:
            per_label[scene.label] = per_label.get(scene.label, 0) + 1
            chosen.append((index, scene))
    return chosen


class ExplorerPanel:
    """The explorer's widgets and the logic that updates them.

    Controls: ``model_choice``, ``image_choice``, ``upload``, ``fuse_toggle``,
    ``rate_sliders`` (one per block), ``schedule_text``, ``lab_button``,
    ``no_pruning_button``. Outputs: ``message`` (errors), ``panel_images`` and
    ``panel_captions`` (input and one per pruning block), ``token_table``, ``gflops_label``,
    ``top5_table``, ``agreement_label``, ``timing_label``. ``state`` is the :class:`ExplorerState` of the
    last successful update, and ``widget`` is the root box.
    """

    def __init__(
        self,
        model: Union[str, VisionTransformer] = "bundled",
        keep_rate: ScheduleLike = LAB_SCHEDULE,
        fuse: bool = True,
        image: Optional[Union[str, Path]] = None,
        class_names: Optional[Sequence[str]] = None,
        scenes: Optional[Sequence] = None,
    ) -> None:
        import ipywidgets as widgets

        self._models: dict[str, _LoadedModel] = {}
        self._images: dict[tuple[str, str], PreparedImage] = {}
        self._reference: dict[tuple[str, str], int] = {}
        self._flops: dict[tuple, float] = {}
        self._sources: dict[str, Callable[[], Image.Image]] = {}
        self._uploads = 0
        self._suspended = False
        self.state: Optional[ExplorerState] = None

        model_options = self._init_models(model, class_names)
        first = self._models[model_options[0][1]].model
        depth = len(first.blocks)
        schedule = parse_keep_rate(keep_rate, depth=depth)
        image_options = self._init_images(scenes, image)

        wide = widgets.Layout(width="420px")
        self.model_choice = widgets.Dropdown(
            options=model_options, value=model_options[0][1], description=tr("explorer.model"), layout=wide
        )
        self.model_note = widgets.HTML()
        if isinstance(model, str) and DEIT_SMALL not in [key for _, key in model_options]:
            self.model_note.value = f"<small>{tr('explorer.deit_unavailable')}</small>"
        self.image_choice = widgets.Dropdown(
            options=image_options, value=image_options[0][1], description=tr("explorer.image"), layout=wide
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description=tr("explorer.upload"))
        self.fuse_toggle = widgets.Checkbox(value=bool(fuse), description=tr("explorer.fuse"), indent=False)
        self.lab_button = widgets.Button(description=tr("explorer.preset_lab"), layout=widgets.Layout(width="auto"))
        self.no_pruning_button = widgets.Button(description=tr("explorer.preset_none"), layout=widgets.Layout(width="auto"))
        self.schedule_text = widgets.Text(
            value=self._schedule_string(schedule),
            placeholder=tr("explorer.schedule_placeholder"),
            description=tr("explorer.schedule"),
            continuous_update=False,
            layout=widgets.Layout(width="360px"),
        )
        self.rate_sliders = [
            widgets.FloatSlider(
                value=rate,
                min=0.0,
                max=1.0,
                step=0.05,
                description=str(i + 1),
                orientation="vertical",
                continuous_update=False,
                readout_format=".2f",
                layout=widgets.Layout(width="48px", height="160px"),
            )
            for i, rate in enumerate(schedule)
        ]
        for i, slider in enumerate(self.rate_sliders):
            slider.add_class(f"lab6-rate-{i + 1}")

        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.message.add_class("lab6-message")
        self.panel_images = [widgets.Image(format="png", layout=widgets.Layout(width="168px", height="168px")) for _ in range(_MAX_PANELS)]
        # Two lines for every caption, so the pictures line up when one caption wraps.
        self.panel_captions = [widgets.HTML(layout=widgets.Layout(height="2.8em")) for _ in range(_MAX_PANELS)]
        for i, picture in enumerate(self.panel_images):
            picture.add_class(f"lab6-panel-{i}")
        self._panel_boxes = [
            widgets.VBox([caption, picture], layout=widgets.Layout(width="176px", margin="0 4px 4px 0"))
            for caption, picture in zip(self.panel_captions, self.panel_images)
        ]
        self.figure_box = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        self.legend = widgets.HTML()
        self.token_table = widgets.HTML()
        self.token_table.add_class("lab6-token-counts")
        self.gflops_label = widgets.HTML()
        self.gflops_label.add_class("lab6-gflops")
        self.top5_table = widgets.HTML()
        self.agreement_label = widgets.HTML()
        self.timing_label = widgets.HTML()

        self.results = widgets.VBox(
            [
                self.figure_box,
                self.legend,
                self.token_table,
                self.gflops_label,
                widgets.HBox([self.top5_table, self.agreement_label], layout=widgets.Layout(align_items="flex-start")),
                self.timing_label,
            ]
        )
        self.widget = widgets.VBox(
            [
                widgets.HTML(tr("explorer.title")),
                widgets.HBox([self.model_choice, self.model_note]),
                widgets.HBox([self.image_choice, self.upload]),
                self.fuse_toggle,
                widgets.HBox([self.lab_button, self.no_pruning_button, self.schedule_text]),
                widgets.HTML(f"<small>{tr('explorer.schedule_help')}</small>"),
                widgets.HTML(f"<small>{tr('explorer.rates')}</small>"),
                widgets.HBox(self.rate_sliders),
                self.message,
                self.results,
            ]
        )
        self.widget.add_class("lab6-explorer")

        for control in [self.model_choice, self.image_choice, self.fuse_toggle, *self.rate_sliders]:
            control.observe(self._on_change, names="value")
        self.schedule_text.observe(self._on_schedule_text, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.lab_button.on_click(lambda _: self.set_schedule(LAB_SCHEDULE))
        self.no_pruning_button.on_click(lambda _: self.set_schedule(1.0))
        self.update()

    # Set-up -------------------------------------------------------------------------------

    def _init_models(self, model: Union[str, VisionTransformer], class_names: Optional[Sequence[str]]) -> list[tuple[str, str]]:
        if isinstance(model, VisionTransformer):
            self._models["custom"] = _custom_model(model, class_names)
            name = (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
            return [(tr("explorer.model_custom", name=name), "custom")]
        if not isinstance(model, str) or model not in ("bundled", DEIT_SMALL):
            raise ExplorerError("explorer.bad_model", value=model)

        from lab6.scenes import CLASS_NAMES

        keys = ["bundled"]
        if model == DEIT_SMALL or _deit_available():
            keys.append(DEIT_SMALL)
        if model == DEIT_SMALL:
            keys.reverse()  # the requested model comes first and is selected
        self._models[keys[0]] = _load_named_model(keys[0])
        labels = {"bundled": tr("explorer.model_bundled", classes=len(CLASS_NAMES)), DEIT_SMALL: tr("explorer.model_deit")}
        return [(labels[key], key) for key in keys]

    def _init_images(self, scenes: Optional[Sequence], image: Optional[Union[str, Path]]) -> list[tuple[str, str]]:
        from lab6.scenes import CLASS_NAMES, CLASS_NAMES_ZH, load_heldout

        options = []
        if image is not None:
            path = Path(image)
            opened = open_rgb(path)  # raises ImageError with a message for a bad path
            key = f"photo:{path}"
            self._sources[key] = lambda: opened
            options.append((tr("explorer.photo_option", name=path.name), key))

        names = CLASS_NAMES_ZH if language() == "zh-TW" else CLASS_NAMES
        pool = load_heldout() if scenes is None else scenes
        per_class = _SCENES_PER_CLASS if scenes is None else len(pool)
        scene_options = []
        for index, scene in _pick_scenes(pool, per_class):
            key = f"scene:{index}"
            self._sources[key] = lambda array=scene.image: Image.fromarray(array)
            scene_options.append((tr("explorer.scene_option", index=index, name=names[scene.label]), key))

        photo_options = []
        for path in _bundled_photos():
            key = f"photo:{path}"
            if key in self._sources:  # the ``image`` argument named this photo already
                continue
            self._sources[key] = lambda path=path: open_rgb(path)
            photo_options.append((tr("explorer.photo_option", name=path.name), key))

        # List photos first for ImageNet models and scenes first for the bundled model.
        if next(iter(self._models)) == DEIT_SMALL:
            return options + photo_options + scene_options
        return options + scene_options + photo_options

    # Display ------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        """Return the root widget's display data, with a short plain-text fallback."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:
            bundle["text/plain"] = tr("explorer.plain_text")
        return bundle

    # Events -------------------------------------------------------------------------------

    def _on_change(self, change: dict) -> None:
        if change["owner"] in self.rate_sliders and not self._suspended:
            self._suspended = True
            try:
                self.schedule_text.value = self._schedule_string(self._slider_rates())
            finally:
                self._suspended = False
        self.update()

    def _on_schedule_text(self, change: dict) -> None:
        if self._suspended:
            return
        try:
            schedule = parse_keep_rate(change["new"], depth=len(self.rate_sliders))
        except Lab6Error as error:
            self._show_error(tr("explorer.update_failed", message=error))
            return
        self.set_schedule(schedule)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        entry = files[-1]
        name = str(entry.get("name", "?"))
        try:
            picture = _decode_upload(name, bytes(entry.get("content", b"")))
        except ExplorerError as error:
            self._show_error(str(error), hide_results=False)  # the previous image stays selected
            return
        self._uploads += 1
        key = f"upload:{self._uploads}"
        self._sources[key] = lambda: picture
        options = list(self.image_choice.options) + [(tr("explorer.upload_option", name=name), key)]
        self._suspended = True
        try:
            self.image_choice.options = options
        finally:
            self._suspended = False
        self.image_choice.value = key  # triggers one update

    def set_schedule(self, keep_rate: ScheduleLike) -> None:
        """Set every slider from a schedule in any form :func:`parse_keep_rate` accepts, then update once."""
        schedule = parse_keep_rate(keep_rate, depth=len(self.rate_sliders))
        self._suspended = True
        try:
            for slider, rate in zip(self.rate_sliders, schedule):
                slider.value = rate
            self.schedule_text.value = self._schedule_string(schedule)
        finally:
            self._suspended = False
        self.update()

    @staticmethod
    def _schedule_string(schedule: Sequence[float]) -> str:
        if all(rate == 1 for rate in schedule):
            return "1"
        return format_schedule(schedule)

    def _slider_rates(self) -> tuple[float, ...]:
        return tuple(round(float(s.value), 4) for s in self.rate_sliders)

    # Computation --------------------------------------------------------------------------

    def _loaded(self, key: str) -> _LoadedModel:
        if key not in self._models:
            self._models[key] = _load_named_model(key)
        return self._models[key]

    def _prepared(self, model_key: str, image_key: str, loaded: _LoadedModel) -> PreparedImage:
        cache_key = (model_key, image_key)
        if cache_key not in self._images:
            prepared = prepare(self._sources[image_key](), loaded.model)
            self._images[cache_key] = PreparedImage(tensor=prepared.tensor.to(loaded.device), view=prepared.view)
        return self._images[cache_key]

    def _gflops(self, model_key: str, loaded: _LoadedModel, schedule: tuple[float, ...], fuse: bool) -> float:
        cache_key = (model_key, schedule, fuse)
        if cache_key not in self._flops:
            self._flops[cache_key] = count_flops(loaded.model, schedule, fuse) / 1e9
        return self._flops[cache_key]

    def update(self) -> None:
        """Run the models with the current controls and refresh every output."""
        if self._suspended:
            return
        started = time.perf_counter()
        try:
            state, output, view = self._compute()
        except Lab6Error as error:
            self._show_error(tr("explorer.update_failed", message=error))
            return
        except Exception as error:  # the panel must show a message, never a traceback
            _logger.exception("explorer update failed")
            self._show_error(tr("explorer.unexpected", error=f"{type(error).__name__}: {error}"))
            return
        self._show(state, output, view, time.perf_counter() - started)

    @torch.no_grad()
    def _compute(self):
        model_key = self.model_choice.value
        image_key = self.image_choice.value
        fuse = bool(self.fuse_toggle.value)
        try:
            loaded = self._loaded(model_key)
        except Lab6Error as error:
            raise ExplorerError("explorer.model_failed", name=model_key, message=error) from None
        schedule = parse_keep_rate(self._slider_rates(), depth=len(loaded.model.blocks))
        prepared = self._prepared(model_key, image_key, loaded)

        reference_key = (model_key, image_key)
        if reference_key not in self._reference:
            with temporary_keep_rate(loaded.model, 1.0):
                logits = loaded.model.forward_evit(prepared.tensor).logits
            self._reference[reference_key] = int(logits.argmax(dim=1)[0])
        with temporary_keep_rate(loaded.model, schedule, fuse=fuse):
            output = loaded.model.forward_evit(prepared.tensor)

        probs = output.logits.float().softmax(dim=1)[0]
        top = probs.topk(min(5, probs.numel()))
        top5 = tuple((int(i), float(p)) for p, i in zip(top.values, top.indices))
        masks = pruning_masks(output, fuse, 0, prepared.view.shape[0] // 16 * (prepared.view.shape[1] // 16))
        state = ExplorerState(
            model=model_key,
            image=image_key,
            schedule=schedule,
            fuse=fuse,
            token_counts=tuple(output.token_counts),
            kept_patches=tuple(int(m.kept.sum()) for m in masks),
            gflops=self._gflops(model_key, loaded, schedule, fuse),
            gflops_unpruned=self._gflops(model_key, loaded, (1.0,) * len(schedule), True),
            top5=top5,
            unpruned_top1=self._reference[reference_key],
            agrees=top5[0][0] == self._reference[reference_key],
            seconds=0.0,
        )
        return state, masks, prepared.view

    # Output -------------------------------------------------------------------------------

    def _show_error(self, text: str, hide_results: bool = True) -> None:
        """Show ``text`` in the panel; hide the results when they no longer match the controls."""
        self.message.value = (
            '<div style="border:1px solid #c62828;background:#ffebee;color:#b71c1c;padding:6px 10px;border-radius:4px">'
            f"{html.escape(text)}</div>"
        )
        self.message.layout.display = None
        if hide_results:
            self.results.layout.display = "none"

    def _show(self, state: ExplorerState, masks, view: np.ndarray, seconds: float) -> None:
        loaded = self._models[state.model]
        names = loaded.class_names
        panels = [(view, tr("explorer.panel_input"))]
        for m in masks:
            key = "explorer.panel_block_fused" if m.fused.any() else "explorer.panel_block"
            panels.append((render_panel(view, m.kept, m.fused), tr(key, block=m.block + 1, kept=int(m.kept.sum()))))
        for picture, caption, (array, text) in zip(self.panel_images, self.panel_captions, panels):
            picture.value = _png(array)
            caption.value = f"<small>{html.escape(text)}</small>"
        self.figure_box.children = self._panel_boxes[: len(panels)]
        self.legend.value = f"<small>{tr('explorer.legend' if masks else 'explorer.no_pruning')}</small>"

        pruning = {i for i, rate in enumerate(state.schedule) if rate < 1}
        head = "".join(
            f"<th style='padding:0 6px;{'color:#c62828' if i in pruning else ''}'>{i + 1}</th>" for i in range(len(state.token_counts))
        )
        cells = "".join(
            f"<td style='padding:0 6px;text-align:center;{'font-weight:bold;color:#c62828' if i in pruning else ''}'>{count}</td>"
            for i, count in enumerate(state.token_counts)
        )
        first = loaded.model.patch_embed.num_patches + 1
        self.token_table.value = (
            f"<div>{tr('explorer.tokens')}</div><table><tr><th style='padding:0 6px'>{tr('explorer.tokens_input')}</th>{head}</tr>"
            f"<tr><td style='padding:0 6px;text-align:center'>{first}</td>{cells}</tr></table>"
        )
        self.gflops_label.value = tr(
            "explorer.gflops", pruned=state.gflops, unpruned=state.gflops_unpruned, ratio=state.gflops / state.gflops_unpruned
        )
        rows = "".join(
            f"<tr><td style='padding:0 8px'>{rank}</td><td style='padding:0 8px'>{html.escape(names[index])}</td>"
            f"<td style='padding:0 8px;text-align:right'>{prob:.1%}</td></tr>"
            for rank, (index, prob) in enumerate(state.top5, start=1)
        )
        self.top5_table.value = f"<div>{tr('explorer.top5')}</div><table>{rows}</table>"
        reference = html.escape(names[state.unpruned_top1])
        if state.agrees:
            self.agreement_label.value = f"<div style='margin-left:24px;color:#2e7d32'>{tr('explorer.agree', name=reference)}</div>"
        else:
            self.agreement_label.value = f"<div style='margin-left:24px;color:#c62828'>{tr('explorer.disagree', name=reference)}</div>"
        self.timing_label.value = f"<small style='color:#757575'>{tr('explorer.timing', seconds=seconds)}</small>"

        self.state = ExplorerState(**{**state.__dict__, "seconds": seconds})
        self.message.value = ""
        self.message.layout.display = "none"
        self.results.layout.display = None


def explore(
    model: Union[str, VisionTransformer] = "bundled",
    keep_rate: ScheduleLike = LAB_SCHEDULE,
    fuse: bool = True,
    image: Optional[Union[str, Path]] = None,
    class_names: Optional[Sequence[str]] = None,
    scenes: Optional[Sequence] = None,
) -> ExplorerPanel:
    """Build the keep-rate explorer; end a notebook cell with it to show the panel.

    Args:
        model: ``"bundled"``, ``"deit_small_patch16_224"`` (needs its pretrained weights on
            this machine), or a timm ``VisionTransformer`` to use as it is.
        keep_rate: the starting schedule, in any form :func:`lab6.schedule.parse_keep_rate`
            accepts; the lab's schedule by default.
        fuse: whether fusion starts switched on.
        image: an image file to offer first, in addition to the bundled scenes and photos.
        class_names: class names for a model passed as an object; read from its
            ``pretrained_cfg["label_names"]`` otherwise.
        scenes: scenes to offer in place of the bundled held-out scenes (all of them are listed).

    The DeiT-S choice appears only when its weights are cached locally. Otherwise the panel
    shows how to download them.
    """
    return ExplorerPanel(model=model, keep_rate=keep_rate, fuse=fuse, image=image, class_names=class_names, scenes=scenes)
