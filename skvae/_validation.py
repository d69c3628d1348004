"""The estimator's checks of the caller's table, and its dataframe libraries.

Part of the scikit-learn facade (``skvae._estimator``): what the caller passes
is checked here, against the fitted schema once there is one, through
scikit-learn's ``validate_data`` so that ``n_features_in_`` and
``feature_names_in_`` follow its rules. What leaves is what the table model
(``skvae._model``) reads: a float array, a sparse matrix, a dask array of whole
rows, or a pandas DataFrame the schema reads column by column. Tables of other
dataframe libraries (polars...) are read as pandas and answered in their own
library.
"""

import math
from collections.abc import Mapping
from numbers import Integral

import narwhals.stable.v2 as nw
import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype
from scipy import sparse
from sklearn.utils.validation import validate_data

from ._schema import infinity_error, is_blocked, row_chunks


def frame_library(X):
    """The module name of a dataframe that is not pandas (``"polars"``, ...),
    as narwhals sees it; None for pandas frames and everything else."""
    if isinstance(X, pd.DataFrame | np.ndarray):
        return None
    frame = nw.from_native(X, eager_only=True, pass_through=True)
    if not isinstance(frame, nw.DataFrame):
        return None
    return nw.get_native_namespace(frame).__name__


def as_pandas(X):
    """``(X, library)``: a polars (or other narwhals-known) dataframe as pandas
    and its library's name; anything else as it is, with None. The schema reads
    pandas columns, whatever library the caller uses."""
    library = frame_library(X)
    if library is None:
        return X, None
    try:
        return nw.from_native(X, eager_only=True).to_pandas(), library
    except ImportError as exc:  # polars converts through pyarrow
        raise ImportError(
            f"Reading a {library} DataFrame needs pyarrow ({exc}). Install it with "
            "pip install pyarrow, or pass a pandas DataFrame."
        ) from exc


def in_library(result, library):
    """``result`` (a pandas frame) in the caller's dataframe ``library``."""
    if library is None or not isinstance(result, pd.DataFrame):
        return result
    import pyarrow  # present: reading the caller's frame needed it

    table = pyarrow.Table.from_pandas(result, preserve_index=False)
    return nw.from_arrow(table, backend=library).to_native()


def _plain_float_rows(X):
    """True for a 2-D float32/float64 numpy array with at least one row."""
    return (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.shape[0] > 0
        and X.dtype in (np.float32, np.float64)
    )


def _numeric_frame(X):
    """True for a DataFrame whose columns are all plain numbers (no bool, no labels).

    Such a frame goes through ``check_array`` like an array, keeping float32;
    any other DataFrame is read column by column by the schema.
    """
    return all(
        is_numeric_dtype(dtype)
        and not is_bool_dtype(dtype)
        and not is_complex_dtype(dtype)
        for dtype in X.dtypes
    )


def _reads_columns(X, schema):
    """True when `X` must be read column by column rather than as one array
    (``schema``: the fitted model's; None for a new fit)."""
    if not isinstance(X, pd.DataFrame):
        return False
    if schema is None:
        return not _numeric_frame(X)
    return not (schema.numeric and _numeric_frame(X))


def _refuse_repeated_names(X):
    if isinstance(X, pd.DataFrame) and X.columns.has_duplicates:
        repeated = list(dict.fromkeys(X.columns[X.columns.duplicated()]))
        raise ValueError(
            f"X has more than one column named {repeated[0]!r} (repeated "
            f"names: {repeated}). Each column must have its own name: rename "
            "or drop the repeats."
        )


def validate_table(estimator, X, model=None, inference=False):
    """Check the caller's table `X` for ``estimator``; what the model reads.

    ``model``: the fitted ``TableModel`` that will read `X` (None: a new fit,
    which sets ``n_features_in_`` and ``feature_names_in_``). A DataFrame with
    non-numeric columns stays a DataFrame. ``inference``: `X` is only read
    through ``encode_rows``, which looks for infinities itself where the rows
    are standardised on a GPU.
    """
    reset = model is None
    if is_blocked(X):
        return _validate_blocks(estimator, X, model)
    X, _ = as_pandas(X)
    _refuse_repeated_names(X)
    if _reads_columns(X, None if reset else model.schema):
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        if X.shape[0] < 1:
            raise ValueError(
                f"Found a DataFrame with 0 rows (shape={X.shape}) while a "
                "minimum of 1 is required."
            )
        if not reset:
            model.schema.check_columns(X)
        return X
    if not reset:
        check_model_reads_numbers(model.schema)
    if not reset and _plain_float_rows(X):
        return _validate_float_rows(estimator, X, model, inference)
    names = list(X.columns) if isinstance(X, pd.DataFrame) else None
    try:
        X = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            # Infinities are looked for below, to name their column.
            ensure_all_finite=False,
            accept_sparse=("csr", "csc"),
        )
    except OverflowError as error:  # Python ints beyond the float range
        raise ValueError(
            f"X holds a number too large for a float ({error}). Rescale the "
            "columns that hold it (for example their logarithm), or turn them "
            "into labels in a DataFrame with astype(str)."
        ) from None
    if sparse.issparse(X):
        _refuse_sparse_holes_and_infinities(X, names)
    else:
        _refuse_infinities(X, names)
    return X


def _refuse_infinities(X, names=None):
    """Refuse a float array holding an infinity, naming its column (from
    ``names``, a DataFrame's columns, else its position)."""
    for chunk in row_chunks(X):  # a chunk at a time: no temporary of X's size
        infinite = np.isinf(chunk).any(axis=0)
        if infinite.any():
            column = int(np.flatnonzero(infinite)[0])
            raise infinity_error(column if names is None else names[column])


def _refuse_sparse_holes_and_infinities(X, names):
    if np.isnan(X.data).any():
        raise ValueError(
            "A sparse X holds NaN entries. Missing values are not supported in "
            "sparse input; pass a dense array with NaN for them, or fill them."
        )
    if np.isinf(X.data).any():
        entries = X.tocoo()
        column = int(entries.col[np.isinf(entries.data)][0])
        raise infinity_error(column if names is None else names[column])


def _validate_float_rows(estimator, X, model, inference):
    """Check a float matrix for a fitted model: the array checks reduce to one
    for infinities, and with no feature names to compare, ``validate_data``'s
    remaining check is the width, done here directly. (Both calls cost more
    than encoding a row: the single-row benchmark in speed.py.)"""
    if hasattr(estimator, "feature_names_in_"):
        # Fitted on named columns: scikit-learn warns of the missing names.
        validate_data(estimator, X, reset=False, skip_check_array=True)
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {estimator.n_features_in_} features as input."
        )
    if not (inference and model.checks_infinity_on_device(X)):
        _refuse_infinities(X, getattr(estimator, "feature_names_in_", None))
    return X


def _validate_blocks(estimator, X, model):
    """Check a dask array without computing it: its blocks are checked as
    they are read (infinities by the statistics pass)."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D dask array, got {X.ndim} dimension(s) (shape={X.shape})."
        )
    if any(math.isnan(n) for n in X.chunks[0]):
        raise ValueError(
            "The dask array's block sizes are unknown (its shape is "
            f"{X.shape}). Call X.compute_chunk_sizes() first, or build it "
            "with known chunks."
        )
    if X.shape[0] < 1:
        raise ValueError(f"Found a dask array with 0 rows (shape={X.shape}).")
    kind = np.dtype(X.dtype).kind
    if kind not in "fiub":
        raise ValueError(
            f"A dask array of dtype {X.dtype} cannot be read as numbers. Pass "
            "an array of floats, integers or booleans."
        )
    if model is not None:
        check_model_reads_numbers(model.schema)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:  # a block must hold whole rows
        X = X.rechunk({1: -1})
    validate_data(estimator, X, reset=model is None, skip_check_array=True)
    return X


def check_model_reads_numbers(schema):
    """Refuse an array for a model fitted on a DataFrame of labels."""
    if not schema.numeric:
        raise ValueError(
            "This VAETransformer was fitted on a DataFrame with non-numeric "
            f"columns ({schema.non_numeric_names()}); pass a DataFrame "
            "with the same columns and dtypes."
        )


def check_sample_request(n_samples, given):
    """Refuse a ``sample`` call's ``n_samples`` or ``given`` of the wrong type."""
    valid = isinstance(n_samples, Integral) and not isinstance(n_samples, bool)
    if not valid or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    if given is not None and not isinstance(given, Mapping):
        raise TypeError(
            "given must be a dict mapping columns to values or (low, high) "
            f"ranges, got {type(given).__name__}."
        )


def check_gaussian_only(X, likelihood, early_stopping):
    """Refuse, before any work, what a fit on a dask array or a sparse matrix
    cannot do (``early_stopping``: this call would hold out rows)."""
    source = "a sparse matrix" if sparse.issparse(X) else "a dask array"
    if early_stopping and not sparse.issparse(X):
        raise ValueError(
            "early_stopping=True needs a held-out split of rows in memory, "
            "which a dask array's fit does not make. Set early_stopping=False, "
            "or call score on held-out blocks between partial_fit calls."
        )
    kinds = set(likelihood.values()) if isinstance(likelihood, dict) else {likelihood}
    if not kinds <= {"auto", "gaussian"}:
        raise ValueError(
            f"{source[0].upper()}{source[1:]} is modelled with Gaussian columns "
            f"only (likelihood={likelihood!r} was given). Fit on a dense "
            "in-memory array or DataFrame for quantile, count, binary or "
            "categorical columns."
        )


def check_hidden_layer_sizes(sizes):
    """Refuse ``hidden_layer_sizes`` that are not positive ints."""
    given = sizes
    sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
    if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a sequence of positive "
            f"ints, got {given!r}."
        )


def check_same_architecture(saved, asked):
    """Refuse to continue training a model whose architecture (``saved``)
    differs from the one the parameters now ask for."""
    changed = {name: (saved[name], asked[name]) for name in saved}
    changed = {name: pair for name, pair in changed.items() if pair[0] != pair[1]}
    if changed:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(
            f"Cannot continue training a model whose architecture changed "
            f"({details}). Set warm_start=False to train a new model, or restore "
            "the parameters."
        )
