"""Every public name is documented: parameters, fitted attributes, numpydoc form."""

import inspect

import numpy as np
import pandas as pd
import pytest
from numpydoc.docscrape import ClassDoc
from numpydoc.validate import validate

import skvae
from skvae import VAEImputer, VAETransformer

PUBLIC_METHODS = {
    VAETransformer: [
        "fit",
        "partial_fit",
        "transform",
        "fit_transform",
        "inverse_transform",
        "sample",
        "score_samples",
        "score",
        "impute",
        "to_onnx",
    ],
    VAEImputer: ["fit", "transform", "fit_transform", "get_feature_names_out"],
}
ESTIMATORS = list(PUBLIC_METHODS)

# numpydoc checks we hold ourselves to. Left out: "SA01"/"EX01" per method (See
# Also and Examples live on the class), "ES01" (extended summary), "RT02" (named
# return values are scikit-learn's style).
CHECKED_CODES = {
    "GL01", "GL02", "GL03", "GL05", "GL06", "GL07", "GL08", "GL10",
    "SS01", "SS02", "SS03", "SS04", "SS05", "SS06",
    "PR01", "PR02", "PR03", "PR04", "PR05", "PR06", "PR07", "PR08", "PR09", "PR10",
    "RT01", "RT03", "RT04", "RT05",
    "YD01",
}  # fmt: skip


def numpydoc_errors(name):
    result = validate(name)
    return [
        (code, message) for code, message in result["errors"] if code in CHECKED_CODES
    ]


@pytest.mark.parametrize(
    "name",
    [
        f"skvae.{cls.__name__}{suffix}"
        for cls, methods in PUBLIC_METHODS.items()
        for suffix in ["", *(f".{m}" for m in methods)]
    ]
    + ["skvae.register_skl2onnx_converter"],
)
def test_numpydoc_validation(name):
    assert numpydoc_errors(name) == []


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_class_has_a_runnable_examples_section(cls):
    doc = ClassDoc(cls)
    assert any(">>>" in line for line in doc["Examples"])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_parameter_is_documented(cls):
    documented = {p.name for p in ClassDoc(cls)["Parameters"]}
    assert documented == set(inspect.signature(cls).parameters)


@pytest.mark.parametrize(
    "estimator",
    [
        VAETransformer(hidden_layer_sizes=(8,), max_iter=2),
        VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=2)),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_every_fitted_attribute_is_documented(estimator):
    # A DataFrame with holes, so that feature_names_in_ and the mask are set too.
    X = pd.DataFrame(np.random.RandomState(0).randn(40, 3), columns=["a", "b", "c"])
    X.iloc[0, 1] = np.nan
    estimator.fit(X)
    fitted = {
        name
        for name in dir(estimator)  # attributes, and properties that read the model
        if name.endswith("_") and not name.startswith("_") and hasattr(estimator, name)
    }
    documented = {a.name for a in ClassDoc(type(estimator))["Attributes"]}
    assert fitted == documented


def test_package_exports():
    assert skvae.__all__ == [
        "VAEImputer",
        "VAETransformer",
        "__version__",
        "register_skl2onnx_converter",
    ]
    assert isinstance(skvae.__version__, str)
