"""docs/quickstart.ipynb runs top to bottom (CI size) in a fresh kernel, with the user's backend untouched."""
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # a user's fresh kernel: not the Agg default that importing rlland.cli (the scripts' flags) put into this
    # test process's environment when another test of the same worker loaded a script
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "PURD mean" in text and "effective rank" in text and "final eval return per seed" in text
    # plt.show() drew into the notebook (an image output), so plotting did not force a non-interactive backend
    assert any("image/png" in o.get("data", {}) for o in outputs)
