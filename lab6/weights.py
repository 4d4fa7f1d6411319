"""Model loading from three weight sources: the bundled model, timm's pretrained weights, or a file.

:func:`load_model` returns the model together with a :class:`WeightsInfo` that records
exactly which weights were loaded. It never falls back from one source to another: when the
requested weights cannot be had, it raises :class:`~lab6.i18n.WeightsError` with a message
that names the fix.

Sources, chosen by ``model`` and ``checkpoint``:

* ``model="bundled"`` (the default without a checkpoint): the small ViT that ships in
  ``lab6/assets/``, trained on the procedural scenes.
* ``model=<timm name>`` without a checkpoint: timm's pretrained weights for that name. The
  local caches are searched first (the Hugging Face cache, then torch hub's). Only if the
  weights are not there does timm download them, and with ``HF_HUB_OFFLINE`` set no
  download is tried at all.
* ``checkpoint=<file>``: a ``.pth``/``.pt`` file (a bare state dict, or one under a
  ``model``, ``state_dict`` or ``model_state_dict`` key, as DeiT and EViT release them) or a
  ``.safetensors`` file, loaded into the architecture ``model`` names. Without ``model``,
  that architecture is ``deit_small_patch16_224`` (:data:`DEFAULT_CHECKPOINT_MODEL`).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from lab6.i18n import WeightsError, language, tr

__all__ = [
    "BUNDLED",
    "DEFAULT_CHECKPOINT_MODEL",
    "WeightsInfo",
    "load_model",
    "build_architecture",
    "read_state_dict",
    "find_cached_weights",
    "hub_offline",
]

_logger = logging.getLogger(__name__)

BUNDLED = "bundled"
DEFAULT_CHECKPOINT_MODEL = "deit_small_patch16_224"

PathLike = Union[str, os.PathLike]

# Keys under which training scripts nest the state dict, in the order they are tried.
# DeiT's and EViT's releases use "model".
_NESTED_KEYS = ("model", "state_dict", "model_state_dict")
# Prefixes that DistributedDataParallel and torch.compile add to every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # the files timm 1.0 requests, in its order
_SHOWN_KEYS = 3  # how many offending keys a mismatch message lists


@dataclass(frozen=True)
class WeightsInfo:
    """The weights a model was loaded with."""

    architecture: str
    """timm model name, or ``"bundled"``."""
    source: str
    """``"bundled"``, ``"timm"`` (timm's pretrained weights) or ``"checkpoint"`` (a local file)."""
    location: str
    """Path of the file that was read, or the Hugging Face Hub id when timm downloaded it."""
    num_classes: int
    class_names: tuple[str, ...]
    """One short English name per output class."""
    class_names_zh: tuple[str, ...]
    """The same names in Traditional Chinese where known (the scenes), else the English ones."""
    dataset: str
    """Label set of the classifier: ``"scenes"``, an ImageNet subset such as ``"imagenet-1k"``, or ``"unknown"``."""

    def class_label(self, index: int) -> str:
        """Return the name of class ``index`` in the user's language, e.g. ``"條紋 (stripes)"``.

        An index beyond the known names, as for a model without a classifier head, gets ``"class N"``.
        """
        if not 0 <= index < len(self.class_names):
            return f"class {index}"
        english = self.class_names[index]
        chinese = self.class_names_zh[index]
        if language() == "en" or chinese == english:
            return english
        return f"{chinese} ({english})"

    def describe(self) -> str:
        """Return one line, in the user's language, naming the model and its weights."""
        key = {
            "bundled": "weights.describe_bundled",
            "timm": "weights.describe_timm",
            "checkpoint": "weights.describe_checkpoint",
        }[self.source]
        return tr(key, architecture=self.architecture, location=self.location, classes=self.num_classes)


def hub_offline() -> bool:
    """Return whether Hugging Face Hub downloads are switched off.

    The environment is read at call time. huggingface_hub reads ``HF_HUB_OFFLINE`` only when it
    is imported, so its own flag is consulted as well.
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_cache_dir() -> str:
    """Return the Hugging Face Hub cache folder from the current environment."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def find_cached_weights(name: str) -> Optional[Path]:
    """Return the local file holding timm's pretrained weights for ``name``, or None.

    Looks in the Hugging Face cache for the files timm would download from the model's
    ``hf_hub_id``, then in torch hub's checkpoint folder for the file named by the model's
    ``url``. Touches no network.
    """
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        filenames = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILENAMES
        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=_hub_cache_dir(), revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if candidate.is_file():
            return candidate
    return None


def _check_model_name(name: str) -> None:
    import timm
    from timm.models import split_model_name_tag

    architecture, tag = split_model_name_tag(name)
    if timm.is_model(name):
        if not tag:
            return
        # timm.is_model accepts any tag after a known architecture; create_model then fails
        # with a RuntimeError, so an unknown tag is caught here.
        tagged = timm.list_pretrained(f"{architecture}.*")
        if name in tagged:
            return
        suggestions = ", ".join(tagged) if tagged else architecture
        raise WeightsError("weights.unknown_tag", name=name, architecture=architecture, suggestions=suggestions)
    # Names are compared in lower case, so "BUNDLED" or "DeiT_Small_Patch16_224" still finds its match.
    known = {known_name.lower(): known_name for known_name in timm.list_models() + [BUNDLED]}
    close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.6)
    suggestions = ", ".join(known[c] for c in close) if close else "deit_small_patch16_224, deit_tiny_patch16_224"
    raise WeightsError("weights.unknown_model", name=name, suggestions=suggestions)


def _download_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types a failed or refused download raises (huggingface_hub 1.x and 2.x)."""
    errors: list[type[BaseException]] = [OSError]  # includes HfHubHTTPError and OfflineModeIsEnabled
    try:
        from huggingface_hub.errors import HTTPError  # the HTTP client's base error, which is not an OSError

        errors.append(HTTPError)
    except ImportError:
        pass
    return tuple(errors)


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's English retry warnings; a failed download gets lab6's own message."""
    from huggingface_hub.utils import logging as hub_logging

    verbosity = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()
    try:
        yield
    finally:
        hub_logging.set_verbosity(verbosity)


def _load_timm_pretrained(name: str) -> tuple[nn.Module, str]:
    """Create ``name`` with timm's pretrained weights; return the model and where they came from."""
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise WeightsError("weights.no_pretrained", name=name)

    cached = find_cached_weights(name)
    if cached is not None:
        _logger.info("loading pretrained weights for %s from the local cache at %s", name, cached)
        # Pointing timm at the cached file keeps the load offline; timm still applies its
        # own checkpoint filter, exactly as for a download.
        overlay = {"file": str(cached), "source": ""}
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay), str(cached)

    hub_id = cfg.hf_hub_id or cfg.url or name
    if hub_offline():
        raise WeightsError("weights.not_cached", name=name, hub_id=hub_id, cache=_hub_cache_dir())
    _logger.info("downloading pretrained weights for %s from %s", name, hub_id)
    try:
        with _quiet_hub():
            model = timm.create_model(name, pretrained=True)
    except _download_errors() as error:
        _logger.warning("download of %s failed: %s", hub_id, error)
        raise WeightsError(
            "weights.download_failed",
            name=name,
            hub_id=hub_id,
            cache=_hub_cache_dir(),
            error=str(error).strip().rstrip(".。"),  # the message adds its own full stop
        ) from None
    found = find_cached_weights(name)
    return model, str(found) if found is not None else hub_id


def _looks_like_safetensors(path: Path) -> bool:
    """Check the header: safetensors files start with an 8-byte length, then a JSON object."""
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _torch_load(path: Path) -> object:
    # A training script's checkpoint often stores its argparse.Namespace of options next to
    # the weights (EViT's and DeiT's main.py do). The namespace holds only plain values, so it
    # is allowed; everything else outside torch's weights-only set is still rejected.
    with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
        # torch warns about a pickle protocol it does not expect before it rejects the file, and
        # that warning would print above lab6's own message.
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


# Lines of torch's weights-only error text that explain the option, not the file (torch 2.6 and later).
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
_UNPICKLER_MARKER = "WeightsUnpickler error:"  # torch puts the reason after this, when it is there
# Words of the weights-only unpickler's reasons that name a Python object the file requests,
# which makes the file a valid pickle that is unsafe to load. Any other reason, such as
# "Unsupported operand 164", means the bytes are not a checkpoint at all.
_UNSAFE_REASONS = ("GLOBAL", "global", "reduce", "Can only build", "Can only create", "persistent_load")


def _error_reason(error: BaseException) -> str:
    """Return the first sentence of ``error`` that describes the fault in the file, without torch's advice."""
    text = str(error)
    if _UNPICKLER_MARKER in text:
        text = text.split(_UNPICKLER_MARKER, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    reason = (reasons or lines or [type(error).__name__])[0]
    if ". " in reason:  # torch appends paragraphs of advice to a one-sentence reason
        reason = reason[: reason.index(". ") + 1]
    return reason


def _read_file(path: Path) -> object:
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError("weights.corrupt", path=path, error=_error_reason(error)) from None
    try:
        return _torch_load(path)
    except pickle.UnpicklingError as error:
        reason = _error_reason(error)
        if any(word in reason for word in _UNSAFE_REASONS):
            raise WeightsError("weights.unsafe_pickle", path=path, error=reason) from None
        raise WeightsError("weights.corrupt", path=path, error=reason) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as error:
        # torch reports a truncated zip archive as RuntimeError and a truncated legacy pickle as EOFError.
        raise WeightsError("weights.corrupt", path=path, error=_error_reason(error)) from None


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def read_state_dict(path: PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file into a state dict; return it and the key it was nested under.

    The key is ``""`` for a bare state dict. Raises :class:`WeightsError` for a missing,
    empty, truncated or unreadable file, a pickle that ``weights_only`` loading rejects, and
    a file that contains no tensors.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise WeightsError("weights.file_missing", path=path)
        if path.is_dir():
            raise WeightsError("weights.is_directory", path=path)
        if path.stat().st_size == 0:
            raise WeightsError("weights.empty_file", path=path)
        with path.open("rb"):
            pass  # a permission error here, not inside torch.load, where it would read as a damaged file
    except OSError as error:  # e.g. no read permission, or a name longer than the file system allows
        raise WeightsError("weights.inaccessible", path=path, error=error) from None

    content = _read_file(path)
    nested_key = ""
    if isinstance(content, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(content.get(key), Mapping):
                content, nested_key = content[key], key
                break
    if not isinstance(content, Mapping):
        raise WeightsError("weights.not_state_dict", path=path, found=type(content).__name__)
    tensors = {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(str(k) for k in list(content)[:5]) or "-"
        raise WeightsError("weights.not_state_dict", path=path, found=f"dict({keys})")
    return _strip_prefixes(tensors), nested_key


_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


def _shape_summary(state: Mapping[str, torch.Tensor]) -> str:
    """Describe a ViT state dict by embedding width and block count, e.g. ``"width 384, 12 blocks"``."""
    width = "?"
    for key in ("cls_token", "pos_embed"):
        if key in state:
            width = str(state[key].shape[-1])
            break
    depths = [int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))]
    depth = str(max(depths) + 1) if depths else "?"
    return tr("weights.shape_summary", width=width, depth=depth)


def _sample(keys: list[str]) -> str:
    if not keys:
        return "-"
    shown = ", ".join(keys[:_SHOWN_KEYS])
    if len(keys) > _SHOWN_KEYS:
        shown += ", ..."
    return shown


def _check_fit(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]

    if not (missing or unexpected or mismatched):
        return
    parts = [
        tr(key, count=len(keys), keys=_sample(keys))
        for key, keys in (
            ("weights.part_missing", missing),
            ("weights.part_unexpected", unexpected),
            ("weights.part_mismatched", mismatched),
        )
        if keys
    ]
    raise WeightsError(
        "weights.wrong_architecture",
        path=path,
        name=name,
        checkpoint_shape=_shape_summary(state),
        model_shape=_shape_summary(expected),
        details=tr("weights.part_separator").join(parts),
        missing_count=len(missing),
        unexpected_count=len(unexpected),
        mismatched_count=len(mismatched),
    )


def _head_classes(model: nn.Module, state: Mapping[str, torch.Tensor]) -> Optional[int]:
    """Return the checkpoint's class count when it differs from the model's, else None."""
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier", "head")
    weight = state.get(f"{classifier}.weight") if isinstance(classifier, str) else None
    if weight is None or weight.dim() != 2 or weight.shape[0] == getattr(model, "num_classes", None):
        return None
    return int(weight.shape[0])


def _load_checkpoint(name: str, path: Path) -> nn.Module:
    state, nested_key = read_state_dict(path)
    _logger.info("read %d tensors from %s (nested under %r)", len(state), path, nested_key)
    if name == BUNDLED:
        from lab6.bundled import create_scenes_vit

        model = create_scenes_vit()
        classes = _head_classes(model, state)
        if classes is not None:
            model = create_scenes_vit(num_classes=classes)
    else:
        import timm

        model = timm.create_model(name, pretrained=False)
        classes = _head_classes(model, state)
        if classes is not None:
            _logger.info("checkpoint %s has %d classes; building %s with that head", path, classes, name)
            model = timm.create_model(name, pretrained=False, num_classes=classes)
    _check_fit(model, state, path, name)
    _check_float(model, state, path)
    _check_finite(state, path)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model


def _check_float(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`WeightsError` when the checkpoint stores a floating-point parameter as integers.

    load_state_dict would cast such a tensor (from a quantized checkpoint, say) silently.
    """
    expected = model.state_dict()
    integer = [k for k in expected if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()]
    if integer:
        dtype = str(state[integer[0]].dtype)
        raise WeightsError("weights.integer_weights", path=path, count=len(integer), keys=_sample(integer), dtype=dtype)


def _check_finite(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`WeightsError` when a floating-point tensor contains NaN or infinity."""
    broken = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise WeightsError("weights.not_finite", path=path, count=len(broken), keys=_sample(broken))


def _load_bundled() -> nn.Module:
    from lab6.bundled import load_bundled_model

    return load_bundled_model()


def _bundled_location() -> str:
    from lab6.bundled import BUNDLED_PATH

    # Relative to the package's parent, so printed output is the same on every machine.
    return BUNDLED_PATH.relative_to(Path(__file__).resolve().parents[1]).as_posix()


def _class_names(model: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """Return English and Traditional Chinese class names and the label set they come from.

    The Chinese names repeat the English ones where none are known.
    """
    num_classes = int(getattr(model, "num_classes", 0))
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = tuple(cfg.get("label_names") or ())
    if cfg.get("architecture") == "scenes_vit" and len(names) == num_classes:
        from lab6.scenes import CLASS_NAMES, CLASS_NAMES_ZH

        names_zh = tuple(cfg.get("label_names_zh") or ())
        if len(names_zh) != num_classes:
            # create_scenes_vit leaves the Chinese names out of its cfg; the scene module has them.
            same_order = names == tuple(CLASS_NAMES[:num_classes])
            names_zh = tuple(CLASS_NAMES_ZH[:num_classes]) if same_order else names
        return names, names_zh, "scenes"

    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if subset is not None:
        info = ImageNetInfo(subset)
        # ImageNet descriptions list synonyms ("tench, Tinca tinca"); the first is the common name.
        names = tuple(info.index_to_description(i).split(",")[0] for i in range(num_classes))
        return names, names, subset
    generic = tuple(f"class {i}" for i in range(num_classes))
    return generic, generic, "unknown"


def build_architecture(model: Optional[str] = None, checkpoint: Optional[PathLike] = None) -> nn.Module:
    """Build the architecture :func:`load_model` would load, on the meta device and without weights.

    It costs no memory and no download, so callers can check that the model suits EViT and
    that a keep-rate schedule fits its depth before any weights are fetched. Raises
    :class:`WeightsError` for an unknown model name.
    """
    name = _resolve_name(model, checkpoint)
    with torch.device("meta"):
        if name == BUNDLED:
            from lab6.bundled import create_scenes_vit

            return create_scenes_vit()
        import timm

        return timm.create_model(name, pretrained=False)


def _resolve_name(model: Optional[str], checkpoint: Optional[PathLike]) -> str:
    name = (model or "").strip() or (DEFAULT_CHECKPOINT_MODEL if checkpoint is not None else BUNDLED)
    if name != BUNDLED:
        _check_model_name(name)
    return name


def load_model(model: Optional[str] = None, checkpoint: Optional[PathLike] = None) -> tuple[nn.Module, WeightsInfo]:
    """Load a model in eval mode on the CPU and report which weights it has.

    Args:
        model: ``"bundled"``, or a timm model name such as ``deit_small_patch16_224``. None
            means ``"bundled"`` without a checkpoint and :data:`DEFAULT_CHECKPOINT_MODEL` with one.
        checkpoint: a weights file to load into that architecture in place of its own weights.
            A checkpoint whose classifier has another class count gets a head of that size.

    Raises:
        WeightsError: an unknown model name; timm weights that are neither cached nor
            downloadable; a checkpoint that is missing, unreadable, or built for another architecture.
    """
    name = _resolve_name(model, checkpoint)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        net = _load_checkpoint(name, path)
        source, location = "checkpoint", str(path)
    elif name == BUNDLED:
        net = _load_bundled()
        source, location = "bundled", _bundled_location()
    else:
        net, location = _load_timm_pretrained(name)
        source = "timm"

    net.eval()
    names, names_zh, dataset = _class_names(net)
    info = WeightsInfo(
        architecture=name,
        source=source,
        location=location,
        num_classes=len(names),
        class_names=names,
        class_names_zh=names_zh,
        dataset=dataset,
    )
    _logger.info("loaded %s", info)
    return net, info
