"""The code blocks of docs/deploying.rst run, top to bottom, as a reader would
run them: the page's examples are tested, not just shown."""

import re
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

PAGE = Path(__file__).resolve().parents[1] / "docs" / "deploying.rst"


def code_blocks(text):
    """The ``.. code-block:: python`` blocks of a reST page, dedented."""
    blocks = []
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[4:] for line in lines).strip() + "\n")
    return blocks


def test_the_page_has_its_examples():
    blocks = code_blocks(PAGE.read_text())
    assert len(blocks) >= 8
    for needle in ("sio.load", "to_onnx", "backend=\"dask\"", "backend=\"ray\"",
                   "from_npy_stack"):  # fmt: skip
        assert any(needle in block for block in blocks), needle


def test_every_code_block_of_the_deploying_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write files where they run
    namespace = {"__name__": "deploying_docs"}
    with warnings.catch_warnings():
        # The examples train for a few epochs only.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for block in code_blocks(PAGE.read_text()):
            exec(compile(block, str(PAGE), "exec"), namespace)
    assert namespace["search"].best_params_["n_components"] in (2, 4)
    assert namespace["codes"].shape == (1797, 2)
