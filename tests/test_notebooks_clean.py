"""Notebooks are committed clean: no outputs, and a papermill ``parameters`` cell with typed defaults."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

from forestguard.reports.runner import RUNNER_PARAMETERS

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"country_report.ipynb", "yearly_overview.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_typed_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", f"{path.name}: needs exactly one code cell tagged 'parameters'"
    declared = papermill.inspect_notebook(str(path))
    assert set(RUNNER_PARAMETERS) <= set(declared), f"{path.name}: the parameters cell must declare {RUNNER_PARAMETERS}"
    untyped = [name for name, spec in declared.items() if spec["inferred_type_name"] in ("None", "")]
    assert untyped == [], f"{path.name}: parameters without a type hint: {untyped}"
