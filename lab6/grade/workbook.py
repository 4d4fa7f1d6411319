"""The reference workbook the grader rebuilds submissions from: notebooks, cell roles, items.

Cells carry their role in tags (see DEVELOPERS.md): ``lab6:answer:<exercise>`` for code the
student writes, ``lab6:check:<exercise>`` for the visible check after it, and
``lab6:report:q1`` .. ``lab6:report:q4`` for the written answers. The points come from
:mod:`lab6.checks.items`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import nbformat
from nbformat import NotebookNode

__all__ = [
    "REPO_ROOT",
    "GradedItem",
    "Workbook",
    "cell_roles",
    "answer_tag",
    "check_tag",
    "report_tag",
    "load_workbook",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

_TAG = re.compile(r"^lab6:(answer|check|report):(.+)$")


def answer_tag(exercise: str) -> str:
    return f"lab6:answer:{exercise}"


def check_tag(exercise: str) -> str:
    return f"lab6:check:{exercise}"


def report_tag(question: str) -> str:
    return f"lab6:report:{question}"


def cell_roles(cell: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the ``(role, exercise)`` pairs that a cell's lab6 tags give it."""
    tags = cell.get("metadata", {}).get("tags", []) or []
    roles = []
    for tag in tags:
        match = _TAG.match(str(tag))
        if match:
            roles.append((match.group(1), match.group(2)))
    return roles


@dataclass(frozen=True)
class GradedItem:
    """One column of the points table: a public, hidden or report item of one notebook."""

    id: str
    kind: str
    """``"public"`` (answer and check cells), ``"hidden"`` (checks run only by the grader) or ``"report"``."""
    points: float
    notebook: str
    exercise: str
    function: str | None
    title: str


@dataclass
class Workbook:
    """The reference notebooks (with expected outputs), the student versions, and the items."""

    reference_dir: Path
    student_dir: Path | None
    items: list[GradedItem]
    _cache: dict[tuple[str, str], NotebookNode] = field(default_factory=dict, repr=False)

    @property
    def notebooks(self) -> list[str]:
        """Notebook stems that have a reference file, sorted."""
        return sorted(path.stem for path in self.reference_dir.glob("*.ipynb"))

    def reference(self, name: str) -> NotebookNode:
        """Return a fresh copy of the reference notebook ``name`` (a stem)."""
        return self._read("reference", self.reference_dir / f"{name}.ipynb")

    def student_version(self, name: str) -> NotebookNode | None:
        """Return the generated student notebook ``name``, or None when there is none."""
        if self.student_dir is None:
            return None
        path = self.student_dir / f"{name}.ipynb"
        return self._read("student", path) if path.is_file() else None

    def items_for(self, notebook: str) -> list[GradedItem]:
        return [item for item in self.items if item.notebook == notebook]

    def _read(self, kind: str, path: Path) -> NotebookNode:
        key = (kind, str(path))
        if key not in self._cache:
            self._cache[key] = nbformat.read(str(path), as_version=4)
        return nbformat.from_dict(_deep_copy(self._cache[key]))


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _deep_copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_deep_copy(value) for value in node]
    return node


def _items_from_table(table: Iterable[Any], language: str) -> list[GradedItem]:
    items = []
    for entry in table:
        title = getattr(entry, "title_en" if language == "en" else "title_zh", None) or entry.id
        items.append(
            GradedItem(
                id=entry.id,
                kind=entry.kind,
                points=entry.points,
                notebook=entry.notebook,
                exercise=entry.exercise,
                function=entry.function,
                title=title,
            )
        )
    return items


def load_workbook(reference_dir: Path | None = None, student_dir: Path | None = None) -> Workbook:
    """Load the workbook: ``solutions/`` as reference and ``notebooks/`` as student versions by default.

    The reference directory may be an instructor's private copy with the same notebook stems.
    """
    from lab6.checks.items import ITEMS
    from lab6.i18n import language

    reference = Path(reference_dir) if reference_dir is not None else REPO_ROOT / "solutions"
    students = Path(student_dir) if student_dir is not None else REPO_ROOT / "notebooks"
    return Workbook(
        reference_dir=reference,
        student_dir=students if students.is_dir() else None,
        items=_items_from_table(ITEMS, language()),
    )
