"""The research notebooks run end to end on the .venv kernel and draw at least one figure."""

from __future__ import annotations

import importlib.util
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


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
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
