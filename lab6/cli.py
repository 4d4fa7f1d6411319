"""The command line: ``python -m lab6 <command> ...``.

Each command is registered by a function in :data:`COMMANDS` that receives argparse's
subparsers object, adds its parser with :func:`add_command`, and sets ``run``: a function
from the parsed arguments to an exit code. To add a command, write such a function and
append it to :data:`COMMANDS`.

User mistakes (:class:`~lab6.i18n.Lab6Error`) are printed as one message in the user's
language and exit with status 2; argparse's own usage errors exit with 2 as well.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from lab6.i18n import Lab6Error, tr

__all__ = ["COMMANDS", "USAGE_ERROR", "add_command", "build_parser", "main"]

_logger = logging.getLogger(__name__)

USAGE_ERROR = 2
"""Exit status for invalid input, the same status argparse uses."""

ASSETS = Path(__file__).resolve().parent / "assets"
SAMPLE_PHOTO = ASSETS / "grace_hopper.jpg"
DEFAULT_OUT = "lab6_figure.png"
TOP_K = 5


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):  # noqa: ANN001 - argparse's signature
        # argparse passes prefix="" when it builds a subcommand's prog; only the default is localised.
        if prefix is None:
            prefix = tr("cli.usage_prefix")
        return super().add_usage(usage, actions, groups, prefix=prefix)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors and section titles are in the user's language."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - passed through to argparse
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = tr("cli.positionals_title")
        self._optionals.title = tr("cli.options_title")
        self.add_argument("-h", "--help", action="help", help=tr("cli.help_help"))

    def error(self, message: str) -> None:
        """Print the usage and a localised error, then exit with status 2."""
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, tr("cli.usage_error", prog=self.prog, detail=message) + "\n")


def add_command(subparsers, name: str, run: Callable[[argparse.Namespace], int], summary: str, description: str):  # noqa: ANN001, ANN201
    """Add a command's parser to ``subparsers`` and return it, for the command's options."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    parser.set_defaults(run=run)
    return parser


def _check_out_path(text: str, image: Optional[str] = None) -> Path:
    """Check ``--out`` before any work starts, so a bad path costs no model run and loses no file."""
    if not text.strip():
        raise Lab6Error("cli.out_empty")
    path = Path(text).expanduser()
    if not path.name.lower().endswith(".png") or len(path.name) == len(".png"):
        raise Lab6Error("cli.out_not_png", path=path)
    try:
        if path.is_dir():
            raise Lab6Error("cli.out_is_directory", path=path)
        folder = path.parent
        if not folder.resolve().is_dir():
            raise Lab6Error("cli.out_folder_missing", path=path, folder=folder)
        if image is not None and path.exists() and Path(image).expanduser().exists() and path.samefile(Path(image).expanduser()):
            raise Lab6Error("cli.out_is_input", path=path)
        # os.access is advisory (root passes it everywhere); save_figure still reports a failed write.
        if not os.access(folder.resolve(), os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise Lab6Error("cli.out_not_writable", path=path)
    except OSError as error:  # e.g. a file name longer than the file system allows
        raise Lab6Error("cli.out_write_failed", path=path, error=error) from None
    return path


def _default_image(info):  # noqa: ANN001, ANN202 - WeightsInfo in, a PIL image and a description out
    """Return the sample picture for a model's label set and a line describing it."""
    from PIL import Image

    from lab6.images import open_rgb

    if info.dataset == "scenes":
        from lab6.scenes import load_heldout

        scene = load_heldout()[0]
        label = info.class_label(scene.label)
        return Image.fromarray(scene.image), tr("cli.image_scene", seed=scene.seed, label=label)
    return open_rgb(SAMPLE_PHOTO), tr("cli.image_photo", path=SAMPLE_PHOTO)


def _format_counts(counts: Sequence[int]) -> list[str]:
    width = max(len(str(c)) for c in (*counts, len(counts))) + 1
    blocks = "".join(f"{i + 1:>{width}}" for i in range(len(counts)))
    tokens = "".join(f"{c:>{width}}" for c in counts)
    return [f"  block:{blocks}", f"  token:{tokens}"]


def run_visualize(args: argparse.Namespace) -> int:
    """Classify one picture with EViT, print what the model kept, and save the figure."""
    import torch

    from lab6.device import pick_device
    from lab6.evit import apply_evit
    from lab6.figure import plot_pruning, save_figure
    from lab6.images import open_rgb, prepare
    from lab6.schedule import format_schedule, parse_keep_rate
    from lab6.weights import build_architecture, load_model

    fuse = not args.no_fuse
    out_path = _check_out_path(args.out, args.image)
    device = pick_device(args.device)
    image = open_rgb(args.image) if args.image else None

    # Check the architecture and the schedule on an empty model before any weights are read.
    empty = build_architecture(args.model, args.checkpoint)
    schedule = parse_keep_rate(args.keep_rate, depth=len(getattr(empty, "blocks", ())) or 12)
    apply_evit(empty, schedule, fuse=fuse)

    model, info = load_model(args.model, args.checkpoint)
    apply_evit(model, schedule, fuse=fuse)
    model.to(device)
    if image is None:
        image, image_line = _default_image(info)
    else:
        image_line = str(Path(args.image).expanduser())
    prepared = prepare(image, model)

    with torch.inference_mode():
        output = model.forward_evit(prepared.tensor.to(device))
    probs = output.logits.float().softmax(dim=-1)[0].cpu()  # [num_classes]
    top = probs.topk(min(TOP_K, probs.numel()))

    patch_size = int(model.patch_embed.patch_size[0])
    figure = plot_pruning(prepared.view, output, fuse=fuse, patch_size=patch_size)
    try:
        saved = save_figure(figure, out_path)
    except OSError as error:
        raise Lab6Error("cli.out_write_failed", path=out_path, error=error) from None

    lines = [
        tr("cli.line_model", text=info.describe()),
        tr("cli.line_device", device=device),
        tr("cli.line_image", text=image_line),
        tr("cli.line_schedule", schedule=format_schedule(schedule), fuse=tr("cli.on" if fuse else "cli.off")),
        tr("cli.line_counts", start=int(model.patch_embed.num_patches) + 1),
        *_format_counts(output.token_counts),
    ]
    if info.num_classes == 0:
        # A model built without a classifier head (num_classes=0, as for DINO weights) outputs features.
        lines.append(tr("cli.line_no_classes", width=output.logits.shape[-1]))
    else:
        lines.append(tr("cli.line_top", k=len(top.indices)))
        for rank, (p, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
            lines.append(f"  {rank}. {info.class_label(index)}  {100 * p:.1f}%")
    lines.append(tr("cli.line_figure", path=saved))
    print("\n".join(lines))
    return 0


def _add_visualize(subparsers) -> None:  # noqa: ANN001 - argparse's private subparsers type
    parser = add_command(subparsers, "visualize", run_visualize, tr("cli.visualize_summary"), tr("cli.visualize_description"))
    parser.add_argument("image", nargs="?", metavar=tr("cli.image_metavar"), help=tr("cli.image_help"))
    source = parser.add_argument_group(tr("cli.weights_group"))
    source.add_argument("--model", metavar="NAME", help=tr("cli.model_help"))
    source.add_argument("--checkpoint", metavar="FILE", help=tr("cli.checkpoint_help"))
    pruning = parser.add_argument_group(tr("cli.pruning_group"))
    pruning.add_argument("--keep-rate", metavar="SPEC", default="0.7@4,7,10", help=tr("cli.keep_rate_help"))
    pruning.add_argument("--no-fuse", action="store_true", help=tr("cli.no_fuse_help"))
    parser.add_argument("--out", metavar="PNG", default=DEFAULT_OUT, help=tr("cli.out_help", default=DEFAULT_OUT))
    parser.add_argument("--device", metavar="DEVICE", help=tr("cli.device_help"))


COMMANDS: list[Callable[..., None]] = [_add_visualize]
"""Functions that each register one command on argparse's subparsers object."""

# The autograder's commands live with the grader (lab6/grade/commands.py).
from lab6.grade.commands import add_check_command, add_grade_command  # noqa: E402

COMMANDS += [add_grade_command, add_check_command]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of ``python -m lab6`` with every command in :data:`COMMANDS`."""
    parser = _Parser(prog="python -m lab6", description=tr("cli.description"))
    subparsers = parser.add_subparsers(
        title=tr("cli.commands_title"), metavar="COMMAND", dest="command", parser_class=_Parser
    )
    subparsers.required = True
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m lab6`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error already printed
        return int(exit_request.code or 0)
    try:
        return int(args.run(args))
    except Lab6Error as error:
        _logger.debug("command %s failed", args.command, exc_info=True)
        print(tr("cli.error_prefix") + str(error), file=sys.stderr)
        return USAGE_ERROR
