"""The rooms of the code (docs/design.rst): who may import whom, and a thin facade.

- the facade (``_estimator``, with its table checks in ``_validation``) holds no
  torch, and reaches the model's world only through ``_model`` and the
  torch-free schema;
- the table model and everything below it know no scikit-learn;
- no room imports one above it.
"""

import ast
from pathlib import Path

import pytest

import skvae

PACKAGE = Path(skvae.__file__).parent
FACADE = ["_estimator", "_validation"]
BELOW_THE_MODEL = [
    "_schema",
    "_data",
    "_networks",
    "_likelihoods",
    "_training",
    "_graphs",
    "_resources",
    "_progress",
    "_onnx",
    "_mixture",
    "_marginals",
    "_conditional",
    "_neighbors",
    "_placement",
]
MODEL_AND_BELOW = ["_model", *BELOW_THE_MODEL]


def imports(module):
    """The top-level packages and the skvae modules that ``module`` imports
    (anywhere in the file, functions included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y, or from . import x
                names |= {node.module} if node.module else {a.name for a in node.names}
            else:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", FACADE)
def test_the_facade_imports_no_torch(module):
    found = imports(module)
    assert "torch" not in found
    # The model's world is reached through the model and the torch-free schema.
    own = {name for name in found if name.startswith("_")}
    assert own <= {"_model", "_schema", "_validation", "_concurrency"}, own


@pytest.mark.parametrize("module", MODEL_AND_BELOW)
def test_the_model_and_below_know_no_scikit_learn(module):
    assert "sklearn" not in imports(module)


@pytest.mark.parametrize("module", MODEL_AND_BELOW)
def test_no_room_imports_one_above_it(module):
    above = {"_estimator", "_validation", "_imputer", "_skl2onnx"}
    if module != "_model":
        above.add("_model")
    assert not imports(module) & above


def test_the_schema_holds_no_torch():
    # The facade reads it directly: it must stay free of torch.
    assert "torch" not in imports("_schema")


def method_body_lines(cls_node):
    for node in cls_node.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            body = node.body
            if ast.get_docstring(node):
                body = body[1:]
            yield node.name, body[-1].end_lineno - body[0].lineno + 1


def test_public_methods_are_check_call_wrap():
    tree = ast.parse((PACKAGE / "_estimator.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    lengths = dict(method_body_lines(cls))
    assert {"fit", "transform", "sample", "score_samples", "impute"} <= set(lengths)
    assert max(lengths.values()) <= 20, lengths


def test_warnings_from_the_rooms_below_point_at_the_callers_line():
    import warnings

    import numpy as np

    from skvae import VAETransformer

    X = (np.random.RandomState(0).randn(40, 3) > 0).astype(float)
    vae = VAETransformer(
        max_iter=2, warmup_epochs=5, input_noise=0.1, likelihood="bernoulli"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.set_params(hidden_layer_sizes=(8,)).fit(X)
    # the warm-up (model's plan), the noise (model's training), the budget (facade)
    assert len(caught) == 3
    assert {w.filename for w in caught} == {__file__}
