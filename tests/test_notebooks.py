"""Every notebook runs top to bottom in quick mode (PDIFF_QUICK=1), in a fresh kernel.

The notebooks are executed in memory (their committed full-mode outputs are left alone), with
their runs in a temporary folder so each test measures a cold start. About a minute each on
the 2-core dev machine. The same check without this file: PDIFF_QUICK=1 pytest --nbmake notebooks/
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_numbered_in_order():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 11)]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    # The kernel is a subprocess: it inherits this environment.
    monkeypatch.setenv("PDIFF_QUICK", "1")
    # Importing streamlit (the app tests) sets MPLBACKEND=Agg in this process; the kernel would
    # inherit it and draw no inline images.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PDIFF_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    # Tiny models gain nothing from intra-op threads; on a shared machine they only spin.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("PDIFF_TEST_THREADS", "1"))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors
    images = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert images, "every notebook ends with at least one plot"
