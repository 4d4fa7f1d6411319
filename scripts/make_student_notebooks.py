"""Generate the student notebooks in notebooks/ from their single source in solutions/.

In every code cell tagged ``lab6:answer:<item>``, each region from a ``# BEGIN SOLUTION``
line to its ``# END SOLUTION`` line is replaced by a stub at the same indentation. The
stub points to the contract stated right above it (the function's docstring lists inputs,
outputs and shapes) and raises ``NotImplementedError``. Markdown cells tagged
``lab6:report:q<N>`` become an empty answer prompt. Every output and execution count is
dropped, so a student sees no result before running a cell, and nbval treats every cell as
unrun: it still fails a cell that raises but compares no outputs. The expected outputs that
grading compares stay in solutions/, which the grader rebuilds submissions from.

Usage::

    python scripts/make_student_notebooks.py            # write notebooks/
    python scripts/make_student_notebooks.py --check    # exit 1 if notebooks/ is out of date
    python scripts/make_student_notebooks.py --execute-solutions   # refresh solution outputs first

The output is byte-for-byte deterministic: the same solutions give the same files.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
ANSWER_TAG = "lab6:answer:"
REPORT_TAG = "lab6:report:"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# Output types kept in solutions/ after execution: text only, so no figure bloats the source.
KEPT_MIME = ("text/plain",)

_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(")


class SourceError(Exception):
    """A solution notebook whose markers are malformed."""


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def tagged(cell, prefix: str) -> str | None:
    """Return the suffix of the first tag starting with ``prefix``, or None."""
    return next((t[len(prefix) :] for t in tags(cell) if t.startswith(prefix)), None)


def stub_lines(indent: str, name: str) -> list[str]:
    """The lines that replace one solution region."""
    return [
        f"{indent}# ==================== TODO：完成 {name} ====================",
        f"{indent}# 輸入、輸出與形狀見上方 {name} 的說明（docstring）。把下一行換成你的程式碼。",
        f'{indent}raise NotImplementedError("{name}：尚未完成，請依照說明實作")',
        f"{indent}# ==================== TODO 結束 ====================",
    ]


def strip_solution(source: str, where: str) -> str:
    """Replace every BEGIN/END SOLUTION region of one cell's source by a stub."""
    out: list[str] = []
    name = None
    inside = False
    regions = 0
    for line in source.split("\n"):
        match = _DEF.match(line)
        if match and not inside:
            name = match.group(1)
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise SourceError(f"{where}: nested {BEGIN}")
            inside = True
            regions += 1
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(stub_lines(indent, name or "這段程式碼"))
        elif marker == END:
            if not inside:
                raise SourceError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SourceError(f"{where}: {BEGIN} without {END}")
    if regions == 0:
        raise SourceError(f"{where}: an answer cell without a {BEGIN} region")
    return "\n".join(out)


def report_prompt(question: str) -> str:
    number = question.lstrip("q")
    return f"**你的回答（報告問題 {number}）：**\n\n（請刪掉這一行，在這裡寫下你的回答。）"


def clean_metadata(metadata: dict) -> dict:
    """Keep only a cell's tags; drop execution timings and editor state, which vary per run."""
    return {key: metadata[key] for key in ("tags",) if key in metadata}


def student_version(solution, stem: str):
    """Return the student notebook built from one solution notebook."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        where = f"{stem}, cell {cell.get('id')}"
        cell.metadata = clean_metadata(cell.metadata)
        if cell.cell_type == "code":
            if tagged(cell, ANSWER_TAG) is not None:
                cell.source = strip_solution(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            question = tagged(cell, REPORT_TAG)
            if question is not None:
                cell.source = report_prompt(question)
        for key in ("attachments",):
            cell.pop(key, None)
    nb.metadata = normalized_metadata(nb.metadata, stem)
    return nb


def normalized_metadata(metadata: dict, stem: str) -> dict:
    """The notebook-level metadata both versions carry: kernelspec, language, workbook id."""
    lab6 = dict(metadata.get("lab6", {}))
    lab6["notebook"] = stem
    return {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "lab6": lab6,
    }


def serialize(nb) -> str:
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def read(path: Path):
    return nbformat.read(path, as_version=4)


def generate(stems: list[str] | None = None) -> dict[Path, str]:
    """Return the text of every student notebook, keyed by its path."""
    result = {}
    for source in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        if stems and source.stem not in stems:
            continue
        result[NOTEBOOKS / source.name] = serialize(student_version(read(source), source.stem))
    return result


def strip_rich_outputs(nb) -> None:
    """Keep the text outputs of an executed solution notebook; drop images, HTML and widgets."""
    for cell in nb.cells:
        cell.metadata = clean_metadata(cell.metadata)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output["output_type"] in ("display_data", "execute_result"):
                data = {k: v for k, v in output.get("data", {}).items() if k in KEPT_MIME}
                if not data or output["output_type"] == "display_data":
                    continue  # e.g. a figure: only its "<Figure ...>" text, which varies
                output["data"] = data
                output["metadata"] = {}
            kept.append(output)
        cell.outputs = kept


def execute_solutions(stems: list[str] | None, timeout: int) -> None:
    """Run every solution notebook in a fresh kernel and store its text outputs in place."""
    from nbclient import NotebookClient

    for source in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        if stems and source.stem not in stems:
            continue
        nb = read(source)
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            coalesce_streams=True,  # one stream output per cell and stream, however the kernel flushed it
            resources={"metadata": {"path": str(SOLUTIONS)}},
        )
        client.execute()
        strip_rich_outputs(nb)
        nb.metadata = normalized_metadata(nb.metadata, source.stem)
        source.write_text(serialize(nb), encoding="utf-8")
        print(f"executed {shown(source)}")


def shown(path: Path) -> str:
    """Return ``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if notebooks/ differs from the generated text")
    parser.add_argument("--execute-solutions", action="store_true", help="run the solution notebooks first and store their text outputs")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell time limit in seconds for --execute-solutions")
    parser.add_argument("stems", nargs="*", help="notebook names without .ipynb, e.g. 01_patch_embedding (default: all)")
    args = parser.parse_args(argv)

    if args.execute_solutions:
        execute_solutions(args.stems, args.timeout)
    try:
        generated = generate(args.stems)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        stale = [path for path, text in generated.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
        if not args.stems:  # a student notebook whose source is gone is stale too
            stale += sorted(set(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) - set(generated))
        for path in stale:
            print(f"out of date: {shown(path)}", file=sys.stderr)
        if stale:
            print("run: python scripts/make_student_notebooks.py", file=sys.stderr)
        return 1 if stale else 0

    NOTEBOOKS.mkdir(exist_ok=True)
    for path, text in generated.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
