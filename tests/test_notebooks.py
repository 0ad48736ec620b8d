"""The research notebooks run end to end on the .venv kernel and draw at least one figure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["01_features.ipynb", "02_backtest.ipynb", "03_parity.ipynb"]


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebooks_match_the_generator(tmp_path: Path) -> None:
    for path in _load_build().build(tmp_path):
        committed = NOTEBOOKS / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is out of date: run `.venv/bin/python notebooks/build.py`"
        )


def test_committed_notebooks_have_no_outputs() -> None:
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, name


def test_notebooks_read_as_stories() -> None:
    """Each notebook opens with the question it answers and its plan, explains its steps in
    prose (no run of more than two code cells without a word between them) and ends with
    conclusions."""
    for name in NAMES:
        cells = nbformat.read(NOTEBOOKS / name, as_version=4).cells
        first = cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), name
        assert "**Question.**" in first.source and "**Plan.**" in first.source, name
        last = cells[-1]
        assert last.cell_type == "markdown" and last.source.startswith("## Conclusions"), name
        assert last.source.count("\n- ") >= 2, f"{name}: conclusions are a list of findings"
        steps = [cell for cell in cells if cell.source.startswith("## ")]
        assert len(steps) >= 3, f"{name}: numbered steps with headings"
        run = 0
        for cell in cells:
            run = run + 1 if cell.cell_type == "code" else 0
            assert run <= 2, f"{name}: three code cells without prose: {cell.source[:60]!r}"


# Run before and after the notebook's own cells: keep every matplotlib figure open, then check
# each one has a title and labelled axes (an x label may sit on the axes it shares x with).
KEEP_FIGURES = "%config InlineBackend.close_figures = False"
CHECK_FIGURES = """\
import json as _json
import matplotlib.pyplot as _plt

_problems, _count = [], 0
for _number in _plt.get_fignums():
    _figure = _plt.figure(_number)
    _count += 1
    _title = _figure._suptitle.get_text() if _figure._suptitle is not None else ""
    for _axes in _figure.axes:
        _shared = _axes.get_shared_x_axes().get_siblings(_axes)
        if not (_title or _axes.get_title()):
            _problems.append(f"figure {_number}: no title")
        if not _axes.get_ylabel():
            _problems.append(f"figure {_number}: an axes without a y label")
        if not any(other.get_xlabel() for other in _shared):
            _problems.append(f"figure {_number}: an axes without an x label")
print("FIGURES " + _json.dumps({"count": _count, "problems": _problems}))
"""


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(KEEP_FIGURES))
    notebook.cells.append(nbformat.v4.new_code_cell(CHECK_FIGURES))
    # jupyter_client swaps a kernelspec argv of `python` for sys.executable, so the kernel is
    # this interpreter (.venv); the first cell prints it and this test checks it.
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    errors = [output for output in outputs if output.output_type == "error"]
    assert not errors, errors
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert f"python: {sys.executable}" in text
    images = [
        output
        for output in outputs
        if output.output_type == "display_data" and "image/png" in output.get("data", {})
    ]
    assert images, f"{name} drew no figure"
    # Matplotlib figures drawn in the kernel (02 shows the backtest's PNGs, whose titles and
    # labels tests/test_examples.py checks).
    [line] = [line for line in text.splitlines() if line.startswith("FIGURES ")]
    figures = json.loads(line.removeprefix("FIGURES "))
    assert figures["problems"] == [], figures
    assert figures["count"] >= (0 if name == "02_backtest.ipynb" else 1), figures
