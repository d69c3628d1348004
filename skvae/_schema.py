"""The table schema: which likelihood models each column, and the conversion
between the caller's table (ndarray or DataFrame) and the model's float32 arrays.

numpy, pandas and scipy.sparse only (a dask array is told by its type, never
imported): nothing here knows about torch or scikit-learn. The model sees one
entry per column, columns grouped by kind in the order of ``KINDS`` so
that each likelihood block reads one contiguous slice:

- ``targets`` (what the likelihood scores): Gaussian columns standardised,
  Poisson columns as raw counts, Bernoulli columns as 0/1 (or a probability),
  categorical columns as the index of their level (a float holding an integer);
  0 where missing. What the encoder reads (one-hot or embedded levels, the
  observed-flags) is derived from these on the model's device, see
  ``skvae._networks.TableReader``, so the host never builds a one-hot block.
- ``observed``: 1 where an entry was observed, 0 where missing, one column per
  table column; None when nothing is missing.

Decoded values (``decode``) have the same layout: a mean or draw per column, the
level's index for categorical columns.
"""

import datetime
from dataclasses import dataclass, field, replace
from numbers import Complex, Number, Real

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_complex_dtype,
    is_numeric_dtype,
    is_object_dtype,
    is_string_dtype,
)
from scipy import sparse

from ._marginals import NormalScoreMap

# The order of the blocks in the model's arrays.
KINDS = ("gaussian", "quantile", "poisson", "bernoulli", "categorical")

# Kinds the networks model as Gaussian: "quantile" is a Gaussian on the
# column's normal scores (see ``skvae._marginals``).
GAUSSIAN_BLOCK = ("gaussian", "quantile")

# Rows converted at a time, so that a huge table never needs a float64 copy.
_CHUNK_ROWS = 8192


def infinity_error(column):
    """What the estimator's checks and the data layer say of an infinity in
    ``column`` (a DataFrame's column name, or an array's column position)."""
    where = f"column {column!r}" if isinstance(column, str) else f"column {column}"
    return ValueError(
        f"Input X contains infinity in {where}. Replace infinite values with "
        "finite ones, or with NaN to count them as missing."
    )


@dataclass
class ColumnSpec:
    """How one column of the caller's table is modelled.

    ``categories`` holds the levels seen in training for categorical columns and
    for Bernoulli columns of labels or booleans (level 0, level 1); it is None for
    numbers. ``mean`` and ``scale`` standardise a Gaussian column, and a count's
    log1p for the encoder. ``normal_scores`` maps a ``"quantile"`` column to
    the scores its Gaussian models, and ``log_jacobian`` is the mean of
    log |dx/dg| over its training values.
    """

    name: object
    kind: str
    dtype: object
    family: str = "number"
    categories: np.ndarray | None = None
    mean: float = 0.0
    scale: float = 1.0
    missing_rate: float = 0.0
    mean_count: float = 0.0
    constant: bool = False
    normal_scores: NormalScoreMap | None = None
    log_jacobian: float = 0.0

    @property
    def n_levels(self):
        """Levels of a categorical column (its softmax's width); 1 otherwise."""
        return len(self.categories) if self.kind == "categorical" else 1

    @property
    def labelled(self):
        """True when values are looked up in ``categories``, not used as numbers."""
        return self.categories is not None


class SchemaError(ValueError):
    """A column the model cannot take, with what to do about it."""


# ------------------------------------------------------------ column dtypes


def _family(column, entries=None):
    """'number', 'bool', 'label', or None for dtypes the model cannot take.

    ``entries``: an object column's ``_object_entries``, when already read.
    """
    dtype = column.dtype
    if is_bool_dtype(dtype):
        return "bool"
    if isinstance(dtype, pd.CategoricalDtype):
        return "label"
    if is_complex_dtype(dtype):
        return None
    if is_numeric_dtype(dtype):
        return "number"
    if is_object_dtype(dtype):
        values, types = entries or _object_entries(column)
        if not len(values):
            return "label"
        if types <= {bool, np.bool_}:
            return "bool"  # a boolean column with holes arrives as object
        # Number takes Decimal too; bool does not count, nor Complex unless
        # every such entry is real.
        if all(_is_real_number_type(t) for t in types):
            return "number"  # e.g. Decimal prices, or a frame cast to object
        if all(
            issubclass(t, Number) and not issubclass(t, bool | np.bool_) for t in types
        ):
            real = all(getattr(v, "imag", 0) == 0 for v in values)
            return "number" if real else "label"
        return "label"
    if is_string_dtype(dtype):
        return "label"
    return None


def _object_entries(column):
    """An object column's observed entries and the set of their types.

    The types are collected in one pass at C speed: a Python test per entry
    cost seconds on a column of 300,000 labels.
    """
    values = column.dropna().to_numpy()
    return values, set(map(type, values))


def _checked_family(name, column):
    """``_family``, after refusing an object column's entries that are neither
    labels nor numbers; one pass over the entries serves both."""
    if not is_object_dtype(column.dtype):
        return _family(column)
    entries = _object_entries(column)
    _refuse_odd_entries(name, *entries)
    return _family(column, entries)


_FAMILY_WORDS = {"number": "numbers", "bool": "booleans", "label": "labels"}


def _is_real_number_type(kind):
    return (
        issubclass(kind, Number)
        and not issubclass(kind, bool | np.bool_)
        and (not issubclass(kind, Complex) or issubclass(kind, Real))
    )


def _unsupported_dtype_error(name, dtype):
    advice = "Convert it to numbers or strings first, or drop it."
    kind = str(dtype)
    if kind.startswith(("datetime", "timedelta", "period")):
        advice = (
            "Turn it into numbers the model can read (for example elapsed days, "
            "or year/month/weekday columns), or drop it."
        )
    elif "complex" in kind:
        advice = "Split it into real and imaginary columns, or drop it."
    return SchemaError(
        f"Column {name!r} has dtype {kind}, which VAETransformer cannot model. {advice}"
    )


# What an object column may hold as labels: text, booleans and plain numbers
# (hashable, ordered, and written back as they came). A column of numbers only
# may hold any real number (Decimal prices, Fractions): it is read as floats.
_LABEL_TYPES = (str, bool, np.bool_, int, float, np.integer, np.floating)
_NESTED = (list, tuple, dict, set, frozenset, np.ndarray)
_BYTES = (bytes, bytearray, memoryview)
_TIMES = (datetime.date, datetime.time, datetime.timedelta, np.datetime64)


def _shown(value):
    """``value``'s repr, cut to 60 characters (numpy scalars as plain ones)."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse_odd_entries(name, values, types):
    """Refuse the entries of an object column that are neither labels nor
    numbers, before anything hashes or converts them: the column, the entry's
    type and what to do. Missing markers (None, NaN, pd.NA, NaT) are holes."""
    if all(issubclass(t, _LABEL_TYPES) for t in types):
        return
    if all(_is_real_number_type(t) for t in types):
        return  # numbers only, e.g. Decimal prices: read as floats
    if all(issubclass(t, Number) and not issubclass(t, bool | np.bool_) for t in types):
        imaginary = [v for v in values if getattr(v, "imag", 0) != 0]
        if not imaginary:
            return  # complex numbers that are all real
        raise SchemaError(
            f"Column {name!r} holds complex numbers (for example "
            f"{_shown(imaginary[0])}), which VAETransformer cannot model. Split it "
            "into real and imaginary columns, or drop it."
        )
    example = next(v for v in values if not isinstance(v, _LABEL_TYPES))
    raise SchemaError(_odd_entry_message(name, example))


def _odd_entry_message(name, example):
    kind = type(example)
    kind = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    if isinstance(example, _NESTED):
        return (
            f"Column {name!r} holds nested objects (for example {_shown(example)}); "
            "each entry must be a single number, string or boolean. Flatten it "
            "into separate columns, or drop it."
        )
    if isinstance(example, _BYTES):
        advice = f"Decode them to strings first (X[{name!r}].str.decode('utf-8'))"
    elif isinstance(example, _TIMES):
        advice = (
            "Turn them into numbers the model can read (for example elapsed "
            "days, or year/month/weekday columns)"
        )
    elif isinstance(example, Number):
        advice = (
            f"Labels must be strings, booleans, ints or floats: convert the column "
            f"with X[{name!r}].astype(str), or its numbers to float"
        )
    else:
        advice = (
            f"Convert the column to strings (X[{name!r}].astype(str)) or to numbers"
        )
    return (
        f"Column {name!r} holds {_shown(example)} (of type {kind}), which is "
        "neither a label (a string, boolean, int or float) nor a number. "
        f"{advice}, or drop the column."
    )


def _levels(name, column):
    """The sorted levels observed in ``column`` (a category dtype keeps its order)."""
    values = column.dropna()
    if isinstance(column.dtype, pd.CategoricalDtype):
        seen = set(values.unique())
        return np.array([c for c in column.dtype.categories if c in seen], dtype=object)
    unique = list(pd.unique(values))
    try:
        unique.sort()
    except TypeError:  # mixed types, e.g. strings and numbers
        unique.sort(key=lambda v: (type(v).__name__, str(v)))
    return np.array(unique, dtype=object)


# ------------------------------------------------------------ building the schema


def _infer_kind(family, n_levels):
    if family == "number":
        # A numeric column with two values in the training data can take others
        # later (a pixel seen as 0/1 may be 2 in new rows): it stays Gaussian
        # unless the caller says otherwise.
        return "gaussian"
    if family == "bool":
        return "bernoulli"
    return "bernoulli" if n_levels == 2 else "categorical"


def _check_kind(name, kind, family, numbers, levels):
    """Refuse a likelihood the column's values cannot follow."""
    if kind in ("gaussian", "quantile", "poisson") and family == "label":
        raise SchemaError(
            f"Column {name!r} holds labels ({', '.join(map(repr, levels[:3]))}, ...), "
            f"but likelihood {kind!r} needs numbers. Use 'categorical' for it."
        )
    if kind == "poisson":
        not_counts = (numbers < 0) | (numbers != np.round(numbers))
        if not_counts.any():
            raise SchemaError(
                f"Column {name!r} was given likelihood 'poisson', which models "
                "non-negative integer counts, but it holds values such as "
                f"{numbers[not_counts][0]:g}. Use 'gaussian' for it."
            )
    if kind == "bernoulli":
        if family == "number" and (numbers.min() < 0 or numbers.max() > 1):
            raise SchemaError(
                f"Column {name!r} was given likelihood 'bernoulli', which models "
                f"values in [0, 1], but it holds values in [{numbers.min():g}, "
                f"{numbers.max():g}]. Rescale it (for example with MinMaxScaler), "
                "or use 'categorical' for a two-valued column."
            )
        if family == "label" and len(levels) != 2:
            raise SchemaError(
                f"Column {name!r} was given likelihood 'bernoulli', but it has "
                f"{len(levels)} levels in the training data, not 2. Use "
                "'categorical' for it."
            )


def _column_spec(name, column, kind):
    """The spec of one training column, ``kind`` None for automatic."""
    family = _checked_family(name, column)
    if family is None:
        raise _unsupported_dtype_error(name, column.dtype)
    all_numbers = None
    if family == "label":
        missing = column.isna().to_numpy()
    else:
        # NaN from the values themselves: a nullable Float64 column can hold a NaN
        # that isna() does not report.
        all_numbers = _finite(name, _numbers(name, column))
        missing = np.isnan(all_numbers)
    if missing.all():
        raise SchemaError(
            f"Column {name!r} has no observed values in the training data, so "
            "nothing can be learned about it. Drop it, or fit on rows where it is "
            "observed."
        )
    numbers = None
    if family == "label":
        levels = _levels(name, column)
    else:
        numbers = all_numbers[~missing]
        levels = np.unique(numbers)
    if family == "bool":
        levels = np.array([False, True], dtype=object)
    kind = kind or _infer_kind(family, len(levels))
    _check_kind(name, kind, family, numbers, levels)
    spec = ColumnSpec(
        name, kind, column.dtype, family, missing_rate=float(missing.mean())
    )
    if kind == "categorical" or (kind == "bernoulli" and family != "number"):
        spec.categories = levels
    if kind == "gaussian":
        spec.mean, spec.scale = map(float, _mean_and_scale(numbers))
        spec.constant = bool(np.all(numbers == numbers[0]))
    elif kind == "quantile":
        spec.normal_scores = NormalScoreMap.fit(numbers)
        spec.log_jacobian = spec.normal_scores.mean_log_jacobian(numbers)
        spec.constant = bool(np.all(numbers == numbers[0]))
        spec.mean = float(numbers[0]) if spec.constant else 0.0
    elif kind == "poisson":
        spec.mean, spec.scale = map(float, _mean_and_scale(np.log1p(numbers)))
        spec.mean_count = float(numbers.mean())
    return spec


def _mean_and_scale(values):
    """Mean and standard deviation of a 1-D array, NaN ignored; a constant column
    keeps a scale of 1."""
    stats = _column_stats(np.asarray(values, dtype=np.float64).reshape(-1, 1))
    mean, scale = _floor_scale(stats.mean, stats.std)
    return mean[0], scale[0]


def _floor_scale(mean, scale):
    """A scale of 1 for columns whose spread is rounding noise of their mean."""
    constant = scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
    return mean, np.where(constant, 1.0, scale)


def _as_frame(X):
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, copy=False)


def build_schema(
    X, likelihood="auto", columns=None, dtypes=None, constants=True, rows=None
):
    """The ``TableSchema`` of the training table ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or DataFrame
    likelihood : str or dict
        "auto" infers each column's kind; one of ``KINDS`` applies to every
        column; a dict maps column names (positions for arrays) to kinds, the
        columns it does not name being inferred.
    columns, dtypes : list, default=None
        The caller's column names and dtypes when ``X`` is the float array of a
        numeric DataFrame: decoded tables are DataFrames with these.
    constants : bool, default=True
        Decode columns that are constant in ``X`` as that constant. False when
        ``X`` is only the first chunk of the data (``partial_fit``), which may not
        show a column's spread.
    rows : ndarray of int, default=None
        Positions of the rows to describe (None: all); a float array's
        statistics read them in place.
    """
    if isinstance(X, pd.DataFrame):
        columns, dtypes = list(X.columns), list(X.dtypes)
    is_frame = columns is not None
    names = list(columns) if is_frame else list(range(X.shape[1]))
    overrides = _overrides(likelihood, names, is_frame)
    if not isinstance(X, pd.DataFrame) and all(
        kind in (None, "gaussian") for kind in overrides.values()
    ):
        return _numeric_schema(X, names, dtypes, is_frame, constants, rows)
    if rows is not None:
        X = X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]
    frame = _as_frame(X)
    specs = [
        _column_spec(name, frame.iloc[:, j], overrides.get(name))
        for j, name in enumerate(names)
    ]
    for j, spec in enumerate(specs):
        spec.constant = spec.constant and constants
        if dtypes is not None:
            spec.dtype = dtypes[j]
    return TableSchema(specs, is_frame=is_frame)


def _numeric_schema(X, names, dtypes, is_frame, constants=True, rows=None):
    """All-Gaussian schema of a float array (its ``rows``), from one chunked pass."""
    stats = _column_stats(X, rows)
    if (stats.n_observed == 0).any():
        name = names[int(np.flatnonzero(stats.n_observed == 0)[0])]
        raise SchemaError(
            f"Column {name!r} has no observed values in the training data, so "
            "nothing can be learned about it. Drop it, or fit on rows where it is "
            "observed."
        )
    mean, scale = _floor_scale(stats.mean, stats.std)
    rates = 1.0 - stats.n_observed / max(X.shape[0] if rows is None else len(rows), 1)
    dtypes = dtypes or [X.dtype] * X.shape[1]
    constant = stats.constant & constants
    specs = [
        ColumnSpec(name, "gaussian", dtype, mean=m, scale=s, missing_rate=r, constant=c)
        for name, dtype, m, s, r, c in zip(
            names, dtypes, mean, scale, rates, constant, strict=True
        )
    ]
    return TableSchema(specs, is_frame=is_frame)


@dataclass
class _ColumnStats:
    mean: np.ndarray
    std: np.ndarray
    n_observed: np.ndarray
    constant: np.ndarray


def _column_stats(X, rows=None):
    """Per-column mean, standard deviation, observed count and constancy of a
    float array (of its ``rows``, None: all), NaN ignored, in one pass of chunks.

    Deviations from a shift (each column's first observed value) are summed in
    float64, a chunk at a time: with the shift inside the data there is no
    cancellation, no float64 copy of the whole table is made, and a column is
    constant exactly when every deviation is zero.
    """
    if sparse.issparse(X):
        return _sparse_column_stats(X if rows is None else X[rows])
    shift = _first_observed(X, rows)
    n_columns = X.shape[1]
    total = np.zeros(n_columns)
    total_sq = np.zeros(n_columns)
    count = np.zeros(n_columns)
    for chunk in row_chunks(X, rows):
        deviations = chunk.astype(np.float64)
        # Overflow (values near 1e154 and up) is caught after the loop.
        with np.errstate(over="ignore", invalid="ignore"):
            deviations -= shift
            sums = deviations.sum(axis=0)
        if np.isnan(sums).any():  # holes: only then pay for a mask
            missing = np.isnan(deviations)
            deviations[missing] = 0.0
            sums = deviations.sum(axis=0)
            count += deviations.shape[0] - missing.sum(axis=0)
        else:
            count += deviations.shape[0]
        if not np.isfinite(sums).all() and np.isinf(chunk).any():
            # Arrays are checked before; the blocks of a dask array only here.
            column = int(np.flatnonzero(np.isinf(chunk).any(axis=0))[0])
            raise SchemaError(
                f"Column {column} holds infinite values. Replace them with finite "
                "numbers, or with NaN to count them as missing."
            )
        total += sums
        with np.errstate(over="ignore", invalid="ignore"):
            total_sq += np.einsum("ij,ij->j", deviations, deviations)
    if not np.isfinite(total_sq).all():
        # Squares beyond float64 (values near 1e154 and up): the slow path.
        return _scaled_column_stats(X, rows, shift)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = total / count
        variance = np.maximum(total_sq / count - centred**2, 0.0)
    return _ColumnStats(
        mean=shift + centred,
        std=np.sqrt(variance),
        n_observed=count,
        constant=(total_sq == 0) & (count > 0),
    )


def _scaled_column_stats(X, rows, shift):
    """``_column_stats`` for columns whose squared deviations overflow float64:
    deviations are divided by each column's largest one (a first pass) before
    they are squared, and the scale multiplied back into the results."""
    # Each column's largest magnitude, as a power of two (exact divisions):
    # values and shift are scaled before they are subtracted, which could
    # itself overflow (1.7e308 - -1.7e308).
    largest = np.zeros(X.shape[1])
    for chunk in row_chunks(X, rows):
        magnitudes = np.abs(chunk.astype(np.float64))
        largest = np.fmax(largest, np.nanmax(magnitudes, axis=0, initial=0.0))
    # 2**(e - 1) <= largest < 2**e: scaled magnitudes stay below 2, and the
    # power itself is finite even for the largest floats.
    _, exponent = np.frexp(np.where(largest > 0, largest, 1.0))
    largest = np.ldexp(1.0, exponent - 1)
    total = np.zeros(X.shape[1])
    total_sq = np.zeros(X.shape[1])
    count = np.zeros(X.shape[1])
    for chunk in row_chunks(X, rows):
        scaled = chunk.astype(np.float64) / largest - shift / largest
        missing = np.isnan(scaled)
        scaled[missing] = 0.0
        count += scaled.shape[0] - missing.sum(axis=0)
        total += scaled.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", scaled, scaled)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = total / count
        variance = np.maximum(total_sq / count - centred**2, 0.0)
    return _ColumnStats(
        mean=shift + largest * centred,
        std=largest * np.sqrt(variance),
        n_observed=count,
        constant=(total_sq == 0) & (count > 0),
    )


def _sparse_column_stats(X):
    """``_column_stats`` of a scipy sparse matrix (no NaN), from its non-zeros:
    no dense copy. A column is constant when its largest and smallest entries
    (implicit zeros included) are equal."""
    n_rows = X.shape[0]
    X = X.tocsc()
    mean = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel() / max(n_rows, 1)
    # Squared deviations from the mean, in float64: the non-zeros', and the
    # implicit zeros' (no E[x^2] - mean^2, which cancels for large means).
    per_column = np.diff(X.indptr)
    columns = np.repeat(np.arange(X.shape[1]), per_column)
    deviations = X.data.astype(np.float64) - mean[columns]
    squares = np.bincount(columns, weights=deviations**2, minlength=X.shape[1])
    squares += (n_rows - per_column) * mean**2
    variance = squares / max(n_rows, 1)
    highest = X.max(axis=0).toarray().ravel()
    lowest = X.min(axis=0).toarray().ravel()
    return _ColumnStats(
        mean=mean,
        std=np.sqrt(variance),
        n_observed=np.full(X.shape[1], float(n_rows)),
        constant=highest == lowest,
    )


def is_blocked(X):
    """True for a dask array: rows in blocks, each computed when it is read.

    Told by its type's module, so that nothing here imports dask."""
    return type(X).__module__.startswith("dask.") and hasattr(X, "blocks")


class RowBlocks:
    """The row blocks of a dask array (one column chunk), each read as a numpy
    array when asked for.

    The graph is split into one task per block once. Blocks are computed in
    this thread (dask's synchronous scheduler): the default threaded one costs
    about 200 ms a block in dispatch (2.8 s against 0.19 s for twelve 64 MiB
    ``.npy`` blocks). With a dask.distributed client active, its scheduler
    computes them, where the data lives.
    """

    def __init__(self, X):
        self.tasks = X.to_delayed().ravel()
        self.sizes = [int(n) for n in X.chunks[0]]
        self.scheduler = None if _distributed_client_active() else "synchronous"

    def __len__(self):
        return len(self.tasks)

    def read(self, b):
        return np.asarray(self.tasks[b].compute(scheduler=self.scheduler))


def _distributed_client_active():
    try:
        from distributed import default_client
    except ImportError:
        return False
    try:
        default_client()
    except ValueError:
        return False
    return True


def row_blocks(X):
    """The blocks of a dask array's rows as numpy arrays, one at a time."""
    blocks = RowBlocks(X)
    for b in range(len(blocks)):
        yield blocks.read(b)


def row_chunks(X, rows=None):
    """Consecutive chunks of a float array's rows (of its ``rows``, in their
    order), so that no pass over a table builds a temporary of its size; a
    dask array's blocks, computed one at a time."""
    if is_blocked(X):
        for block in row_blocks(X):  # in chunks too: passes copy what they read
            for start in range(0, block.shape[0], _CHUNK_ROWS):
                yield block[start : start + _CHUNK_ROWS]
        return
    n_rows = X.shape[0] if rows is None else len(rows)
    for start in range(0, n_rows, _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        yield X[start:stop] if rows is None else X[rows[start:stop]]


def _first_observed(X, rows=None):
    """Each column's first non-NaN value (0 for a column with none), float64.

    Reads chunks until every column has shown a value: one chunk, unless a
    column has holes all through it (rare)."""
    shift = np.zeros(X.shape[1])
    pending = np.ones(X.shape[1], dtype=bool)
    for chunk in row_chunks(X, rows):
        seen = ~np.isnan(chunk[:, pending])
        found = seen.any(axis=0)
        columns = np.flatnonzero(pending)[found]
        shift[columns] = chunk[seen.argmax(axis=0)[found], columns]
        pending[columns] = False
        if not pending.any():
            break
    return shift


def _overrides(likelihood, names, is_frame):
    """Map each column name to the kind the caller asked for (None: automatic)."""
    if isinstance(likelihood, str):
        kind = None if likelihood == "auto" else likelihood
        return {name: kind for name in names}
    unknown = [key for key in likelihood if key not in names]
    if unknown:
        where = "columns of X" if is_frame else "column positions 0 .. n_features - 1"
        raise SchemaError(
            f"likelihood names columns that X does not have: {unknown}. Keys must "
            f"be {where}."
        )
    bad = {key: kind for key, kind in likelihood.items() if kind not in KINDS}
    if bad:
        raise SchemaError(
            f"likelihood maps columns to unknown kinds {bad}; each must be one of "
            f"{list(KINDS)}."
        )
    return dict(likelihood)


# ------------------------------------------------------------ the schema


@dataclass(frozen=True)
class Condition:
    """A condition of ``sample(given=...)`` at layout position ``k``: the model's
    value lies in [``low``, ``high``] (equal for a value). ``density``: a value
    of a number column, whose likelihood is a density, not a probability."""

    k: int
    low: float
    high: float
    density: bool = False
    # (column, low, high) in the caller's units, for a number column
    given: tuple | None = None

    def clip(self, table):
        """A number column of the decoded ``table`` clipped into its range (set
        to its value) in the caller's units: float32 scores come back a
        rounding off."""
        if self.given is None:
            return table
        j, low, high = self.given
        if isinstance(table, pd.DataFrame):
            column = table.iloc[:, j]
            if pd.api.types.is_integer_dtype(column.dtype):
                low, high = np.ceil(low), np.floor(high)
            table[table.columns[j]] = column.clip(low, high).astype(column.dtype)
        else:
            table[:, j] = np.clip(table[:, j], low, high)
        return table

    @property
    def is_value(self):
        return self.low == self.high


@dataclass
class Encoded:
    """A table as the model sees it; see the module docstring."""

    targets: np.ndarray
    observed: np.ndarray | None = None


@dataclass(frozen=True)
class ModelLayout:
    """What the networks and likelihoods need to know of the table.

    The model's columns in order: ``n_gaussian`` Gaussian, then the Poisson
    columns (the encoder reads ``(log1p(count) - log_mean) / log_scale``; the
    decoder's log-rate starts at ``log_rate``), ``n_bernoulli`` Bernoulli, then
    one categorical column per entry of ``levels`` (its number of levels).
    ``mask_inputs``: the encoder also reads the observed-flags.
    """

    n_gaussian: int = 0
    poisson_log_mean: tuple = ()
    poisson_log_scale: tuple = ()
    poisson_log_rate: tuple = ()
    n_bernoulli: int = 0
    levels: tuple = ()
    mask_inputs: bool = False

    @property
    def n_poisson(self):
        return len(self.poisson_log_mean)

    @property
    def n_numeric(self):
        """Columns before the categorical ones: one number each."""
        return self.n_gaussian + self.n_poisson + self.n_bernoulli

    @property
    def n_columns(self):
        return self.n_numeric + len(self.levels)


@dataclass
class TableSchema:
    """The fitted description of a table: one ``ColumnSpec`` per column.

    ``mask_inputs`` is True when the training data had missing entries: the
    encoder then reads the observed-mask next to the values.
    """

    columns: list
    is_frame: bool
    mask_inputs: bool = False
    order: list = field(init=False)

    def __post_init__(self):
        # Positions of the caller's columns, grouped by kind, stable within a kind.
        self.order = sorted(
            range(len(self.columns)), key=lambda j: KINDS.index(self.columns[j].kind)
        )
        # What follows is derived from the specs once: encode and decode run on
        # every transform call, where recomputing it cost more than a row's maths.
        gaussian = [s.kind == "gaussian" for s in self.columns]
        # (position in the model's layout, spec) of the columns that need more
        # than standardising; used where every column takes one entry.
        self._not_gaussian = [
            (k, spec)
            for k, spec in enumerate(self.ordered())
            if spec.kind != "gaussian"
        ]
        self._all_gaussian = not self._not_gaussian
        self._numeric = all(spec.family == "number" for spec in self.columns)
        # Columns read as levels (an array's categorical columns too): they are
        # looked up one by one, never standardised as numbers.
        self._labelled = any(spec.labelled for spec in self.columns)
        self._identity_order = self.order == list(range(len(self.columns)))
        self._mean = np.array(
            [s.mean if g else 0.0 for s, g in zip(self.columns, gaussian, strict=True)]
        )
        self._scale = np.array(
            [s.scale if g else 1.0 for s, g in zip(self.columns, gaussian, strict=True)]
        )
        self.mask_inputs = self.mask_inputs or any(
            spec.missing_rate > 0 for spec in self.columns
        )

    # ---- shape of the model's arrays

    @property
    def n_columns(self):
        return len(self.columns)

    def layout(self):
        """The ``ModelLayout`` the networks and likelihoods are built from."""
        ordered = self.ordered()
        poisson = [s for s in ordered if s.kind == "poisson"]
        return ModelLayout(
            n_gaussian=sum(s.kind in GAUSSIAN_BLOCK for s in ordered),
            poisson_log_mean=tuple(s.mean for s in poisson),
            poisson_log_scale=tuple(s.scale for s in poisson),
            poisson_log_rate=tuple(np.log(max(s.mean_count, 1e-3)) for s in poisson),
            n_bernoulli=sum(s.kind == "bernoulli" for s in ordered),
            levels=tuple(s.n_levels for s in ordered if s.kind == "categorical"),
            mask_inputs=self.mask_inputs,
        )

    def ordered(self):
        return [self.columns[j] for j in self.order]

    @property
    def identity_order(self):
        return self._identity_order

    @property
    def mean(self):
        """Per-column offset in the caller's units (0 for non-Gaussian columns)."""
        return self._mean

    @property
    def scale(self):
        """Per-column scale in the caller's units (1 for non-Gaussian columns)."""
        return self._scale

    @property
    def all_gaussian(self):
        return self._all_gaussian

    @property
    def numeric(self):
        """True when every column was numbers at fit (not labels or booleans)."""
        return self._numeric

    def non_numeric_names(self):
        return [spec.name for spec in self.columns if spec.family != "number"]

    def log_jacobian(self, observed=None):
        """log |d(standardised)/d(caller's units)|^-1 per row: the sum of log scale
        over each row's observed Gaussian entries (a scalar when all observed)."""
        log_scale = np.log(self.scale[self.order])
        if observed is None:
            return float(log_scale.sum())
        return np.asarray(observed, dtype=np.float64) @ log_scale

    def mean_log_jacobian(self):
        """``log_jacobian`` averaged over the training rows, with the normal-score
        maps' (their mean log |dx/dg|)."""
        observed = 1.0 - np.array([s.missing_rate for s in self.columns])
        per_column = np.log(self.scale) + [s.log_jacobian for s in self.columns]
        return float(observed @ per_column)

    def normal_score_columns(self):
        """(position in the model's layout, map) of each ``"quantile"`` column."""
        return [
            (k, spec.normal_scores)
            for k, spec in enumerate(self.ordered())
            if spec.kind == "quantile"
        ]

    def to_frame(self):
        """One row per column: its dtype, likelihood, levels and missing rate."""
        return pd.DataFrame(
            {
                "dtype": [str(s.dtype) for s in self.columns],
                "likelihood": [s.kind for s in self.columns],
                "categories": [
                    None if s.categories is None else list(s.categories)
                    for s in self.columns
                ],
                "missing_rate": [s.missing_rate for s in self.columns],
            },
            index=pd.Index([s.name for s in self.columns], name="column"),
        )

    def __repr__(self):
        return f"TableSchema(\n{self.to_frame().to_string()}\n)"

    # ---- caller's table -> model arrays

    def check_columns(self, X):
        """Refuse a table whose column dtypes changed since the fit."""
        if not isinstance(X, pd.DataFrame):
            return
        for spec, (name, column) in zip(self.columns, X.items(), strict=True):
            if column.isna().all():
                continue  # nothing observed, nothing to misread
            family = _checked_family(name, column)
            if family is None:
                raise _unsupported_dtype_error(name, column.dtype)
            # A boolean column that gains holes turns into floats or objects.
            if family != spec.family and not (
                spec.family == "bool" and family == "number"
            ):
                # astype(bool) would turn every non-empty string into True.
                same_dtype = str(column.dtype) == str(spec.dtype)
                how = (
                    "Map its values back to True/False"
                    if spec.family == "bool"
                    else f"Pass it with the {_FAMILY_WORDS[spec.family]} it held"
                    if same_dtype
                    else f"Convert it back (for example X[{name!r}]."
                    f"astype({str(spec.dtype)!r}))"
                )
                was, now = (
                    (f"held {_FAMILY_WORDS[spec.family]}", _FAMILY_WORDS[family])
                    if same_dtype
                    else (f"had dtype {spec.dtype}", f"dtype {column.dtype}")
                )
                raise SchemaError(
                    f"Column {name!r} {was} when the model was fitted but has "
                    f"{now} now. {how} before calling this method."
                )

    def encode(self, X, handle_unknown="error"):
        """``Encoded`` arrays of the table ``X`` (same columns as at fit)."""
        if isinstance(X, np.ndarray) and not self._labelled:
            return self._encode_numeric(X)
        self.check_columns(X)
        frame = _as_frame(X)
        n_rows = frame.shape[0]
        targets = np.zeros((n_rows, self.n_columns), dtype=np.float32)
        observed = np.ones((n_rows, self.n_columns), dtype=np.float32)
        for k, j in enumerate(self.order):
            observed[:, k] = self._encode_column(
                self.columns[j], frame.iloc[:, j], targets[:, k], handle_unknown
            )
        any_missing = not observed.all()
        return Encoded(targets, observed if any_missing else None)

    def _encode_numeric(self, X):
        """A float array: one standardising pass, chunked, in X's own precision.

        float32 input is standardised in float32 (the subtraction of a nearby
        mean is exact, so nothing is lost that the input held); float64 input in
        float64 before the cast, so that a column like 1e8 + noise keeps its
        spread. No chunk builds more than one float64 copy of itself.
        """
        order = None if self.identity_order else self.order
        mean, scale = (
            (self.mean, self.scale)
            if order is None
            else (self.mean[order], self.scale[order])
        )
        precision = np.float32 if X.dtype == np.float32 else np.float64
        mean, scale = mean.astype(precision), scale.astype(precision)
        targets = np.empty(X.shape, dtype=np.float32)
        observed = None
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            rows = slice(start, start + _CHUNK_ROWS)
            chunk = X[rows] if order is None else X[rows][:, order]
            standardised = (chunk - mean) / scale
            missing = np.isnan(standardised)
            if missing.any():
                if observed is None:
                    observed = np.ones(X.shape, dtype=np.float32)
                observed[rows] = ~missing
                standardised[missing] = 0.0
            # Values beyond float32 (rows ~1e38 scales from the training data)
            # become inf, which every method then refuses with a clear error.
            with np.errstate(over="ignore"):
                targets[rows] = standardised
        for k, spec in self._not_gaussian:
            seen = slice(None) if observed is None else observed[:, k] > 0
            if spec.kind == "quantile":
                column = X[:, self.order[k]]
                targets[seen, k] = spec.normal_scores.to_scores(column[seen])
            self._check_range(spec, targets[seen, k])
        return Encoded(targets, observed)

    @staticmethod
    def _check_range(spec, values):
        """Refuse values a Bernoulli or Poisson column cannot take (NaN-free input)."""
        if spec.kind == "bernoulli" and not spec.labelled and values.size:
            low, high = values.min(), values.max()
            if low < 0 or high > 1:
                raise SchemaError(
                    f"Column {spec.name!r} is modelled as Bernoulli, which needs "
                    f"values in [0, 1], but holds values in [{low:g}, {high:g}]. "
                    "Rescale it (for example with MinMaxScaler), or model it as "
                    "'gaussian'."
                )
        if spec.kind == "poisson" and (values < 0).any():
            raise SchemaError(
                f"Column {spec.name!r} is modelled as counts (Poisson) but holds "
                "negative values. Model it as 'gaussian' instead."
            )

    def _encode_column(self, spec, column, out, handle_unknown):
        """Write one column's targets into ``out``; return its observed-mask."""
        missing = column.isna().to_numpy()
        if spec.labelled:
            codes = _codes(column, spec.categories, missing)
            unseen = (codes < 0) & ~missing
            if unseen.any():
                if handle_unknown == "error":
                    example = column[unseen].iloc[0]
                    shown = list(spec.categories[:20])
                    more = len(spec.categories) - len(shown)
                    raise SchemaError(
                        f"Column {spec.name!r} has the value {_shown(example)}, which "
                        f"was not seen during fit (seen: {shown}"
                        f"{f' and {more} more' if more > 0 else ''}). Pass "
                        "handle_unknown='missing' to treat unseen values as missing."
                    )
                missing = missing | unseen
            seen = ~missing
            out[seen] = codes[seen]
            return seen
        values = _finite(spec.name, _numbers(spec.name, column))
        missing = np.isnan(values)
        seen = ~missing
        if spec.kind == "gaussian":
            values = (values - spec.mean) / spec.scale
        elif spec.kind == "quantile":
            values = spec.normal_scores.to_scores(values)
        self._check_range(spec, values[seen])
        out[seen] = values[seen]
        return seen

    # ---- conditions of ``sample(given=...)``

    def conditions(self, given):
        """The ``Condition`` of each entry of ``given`` (column name, position for
        an array -> a value, or a (low, high) range of a number column)."""
        names = [spec.name for spec in self.columns]
        unknown = [key for key in given if key not in names]
        if unknown:
            where = "columns" if self.is_frame else "column positions"
            raise SchemaError(
                f"given names {unknown}, which are not among the model's {where} "
                f"{names[:20]}."
            )
        position = {j: k for k, j in enumerate(self.order)}
        columns = {key: names.index(key) for key in given}
        return [
            self._condition(position[columns[key]], columns[key], value)
            for key, value in given.items()
        ]

    def _condition(self, k, j, value):
        spec = self.columns[j]
        if isinstance(value, tuple | list):
            low, high = self._range_targets(spec, value)
            return Condition(k, low, high, given=(j, *map(float, value)))
        column = pd.Series([value], dtype=object if spec.labelled else None)
        out = np.zeros(1, dtype=np.float32)
        try:
            seen = self._encode_column(spec, column, out, "missing")
        except (TypeError, ValueError) as error:
            raise SchemaError(
                f"given[{spec.name!r}] = {_shown(value)} cannot be read as a value "
                f"of that column: {error}"
            ) from None
        if not seen[0]:
            levels = "" if spec.categories is None else f" ({list(spec.categories)})"
            raise SchemaError(
                f"given[{spec.name!r}] = {_shown(value)} is not a value the column "
                f"held in training{levels[:300]}: the model cannot condition on it."
            )
        target = float(out[0])
        exact = None if spec.labelled else (j, float(value), float(value))
        return Condition(
            k, target, target, density=spec.kind in GAUSSIAN_BLOCK, given=exact
        )

    @staticmethod
    def _range_targets(spec, bounds):
        """A (low, high) range in the model's units: the interval of scores that
        decode into it."""
        if spec.kind not in GAUSSIAN_BLOCK or len(bounds) != 2:
            raise SchemaError(
                f"given[{spec.name!r}] = {bounds!r}: a range is a (low, high) pair, "
                "for a column modelled as 'gaussian' or 'quantile'; give other "
                "columns one value."
            )
        low, high = (float(b) for b in bounds)
        if not low <= high:
            raise SchemaError(
                f"given[{spec.name!r}] = {bounds!r}: low must not exceed high."
            )
        if spec.kind == "gaussian":
            return (low - spec.mean) / spec.scale, (high - spec.mean) / spec.scale
        return spec.normal_scores.score_range(low, high, spec.name)

    # ---- model arrays -> caller's table

    def decode(self, values, dtype=np.float64):
        """The caller's table from decoded block values (means or draws).

        ``values`` has the layout of ``targets``: a mean or draw for Gaussian,
        Poisson and Bernoulli columns, the index of a level (the most probable,
        or a drawn one) for categorical ones.
        """
        if self.all_gaussian and not self.is_frame:
            out = (values * self.scale + self.mean).astype(dtype)
            # A constant column is its constant, whatever the model's noise says.
            constant = [j for j, spec in enumerate(self.columns) if spec.constant]
            out[:, constant] = self.mean[constant]
            return out
        return self._decode_columns(values, dtype)

    def fill(self, X, predicted, frame=None):
        """``X`` with its missing entries taken from ``predicted``.

        ``predicted`` is ``decode``'s output for the same rows. A table fitted as
        a DataFrame comes back as a DataFrame with the training columns and
        dtypes. ``frame``: the caller's DataFrame when ``X`` is the float array
        read from it; its observed entries are kept as they are (through
        floats, an Int64 of 2**63 - 10 would change) and its index too.
        """
        if isinstance(X, np.ndarray):
            if self.is_frame and frame is not None:
                return self._fill_numeric_frame(frame, np.isnan(X), predicted)
            as_array = (
                predicted.to_numpy(dtype=np.float64)
                if isinstance(predicted, pd.DataFrame)
                else predicted
            )
            filled = np.where(np.isnan(X), as_array, X).astype(X.dtype, copy=False)
            if not self.is_frame:
                return filled
            filled = pd.DataFrame(filled, columns=predicted.columns)
            return filled.astype(dict(predicted.dtypes))
        if not isinstance(predicted, pd.DataFrame):  # fitted on an array
            predicted = pd.DataFrame(predicted, index=X.index)
        filled = {}
        for j, spec in enumerate(self.columns):
            column = X.iloc[:, j]
            missing = column.isna().to_numpy()
            if spec.labelled:  # unseen labels were read as missing: fill them too
                missing = missing | (_codes(column, spec.categories, missing) < 0)
            values = column.to_numpy(dtype=object).copy()
            values[missing] = predicted.iloc[:, j].to_numpy(dtype=object)[missing]
            # Every column in its training dtype, holes or not.
            filled[X.columns[j]] = _as_dtype(values, spec, index=X.index)
        return pd.DataFrame(filled, index=X.index)

    @staticmethod
    def _fill_numeric_frame(frame, missing, predicted):
        filled = {
            name: frame.iloc[:, j]
            .mask(missing[:, j], predicted.iloc[:, j].to_numpy())
            .astype(dtype)
            for j, (name, dtype) in enumerate(predicted.dtypes.items())
        }
        return pd.DataFrame(filled, index=frame.index)

    def _decode_columns(self, values, dtype):
        columns = {
            j: self._decode_column(self.columns[j], values[:, k])
            for k, j in enumerate(self.order)
        }
        if not self.is_frame:
            out = np.empty((values.shape[0], self.n_columns), dtype=dtype)
            for j, column in columns.items():
                out[:, j] = column
            return out
        frame = {s.name: _as_dtype(columns[j], s) for j, s in enumerate(self.columns)}
        return pd.DataFrame(frame)

    def _decode_column(self, spec, values):
        if spec.kind == "categorical":  # the level's index
            return spec.categories[values.astype(np.intp)]
        values = values.astype(np.float64)
        if spec.constant:
            return np.full_like(values, spec.mean)
        if spec.kind == "gaussian":
            return values * spec.scale + spec.mean
        if spec.kind == "quantile":
            return spec.normal_scores.to_values(values)
        if spec.labelled:  # Bernoulli over two levels: the more probable one
            return spec.categories[(values > 0.5).astype(int)]
        return values


def _numbers(name, column):
    """A numeric or boolean column as float64, NaN where missing."""
    if not is_object_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    # Booleans with holes, or boxed numbers; Python ints may exceed floats.
    try:
        return np.array(
            [np.nan if pd.isna(v) else float(_real(v)) for v in column],
            dtype=np.float64,
        )
    except OverflowError:
        huge = next(v for v in column.dropna() if not _fits_a_float(v))
        raise SchemaError(
            f"Column {name!r} holds the integer {_shown(huge)} ({len(str(abs(huge)))} "
            "digits), beyond the range of floating-point numbers (about 1.8e308), "
            "which is how the model reads numbers. Rescale the column (for example "
            "its logarithm), or turn it into labels with astype(str)."
        ) from None


def _real(value):
    """A number as a real (complex numbers of a numeric column are all real)."""
    return value.real if isinstance(value, complex | np.complexfloating) else value


def _fits_a_float(value):
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _finite(name, values):
    """``values``, refusing infinities (NaN is fine: it means missing)."""
    if np.isinf(values).any():
        raise SchemaError(
            f"Column {name!r} holds infinite values. Replace them with finite "
            "numbers, or with NaN to count them as missing."
        )
    return values


def _codes(column, categories, missing):
    """Index of each entry in ``categories``; -1 for missing and unseen values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    codes = pd.Index(categories, dtype=object).get_indexer(column.astype(object))
    codes[missing] = -1
    return codes


def _as_dtype(values, spec, index=None):
    """``values`` as a Series of the column's training dtype."""
    dtype = spec.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = pd.Categorical(values, dtype=dtype)
    elif is_bool_dtype(dtype):
        values = np.asarray(values, dtype=float) > 0.5
    elif pd.api.types.is_integer_dtype(dtype) and _all_integers(values, dtype):
        pass  # observed entries of an integer column, kept exactly
    elif is_numeric_dtype(dtype):
        values = np.asarray(values, dtype=np.float64)
        if pd.api.types.is_integer_dtype(dtype):
            # Round, and keep within the dtype: a decoded -0.4 in a uint8 column
            # is 0, not an overflow.
            values = np.clip(np.rint(values), *_float_limits(dtype))
    # Series(..., dtype=object) stays object; a bare object array would be
    # inferred as strings by pandas >= 3.
    return pd.Series(values, dtype=dtype, index=index)


def _all_integers(values, dtype):
    """True for an object array of ints only, all within ``dtype`` (filled rows
    of an integer column: through floats, 2**63 - 10 would come back as another
    number)."""
    values = np.asarray(values)
    if values.dtype != object or pd.api.types.infer_dtype(values) != "integer":
        return False
    limits = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
    return int(limits.min) <= min(values) and max(values) <= int(limits.max)


def _float_limits(dtype):
    """The smallest and largest float64 values that cast into the integer
    ``dtype``: int64's and uint64's maxima round up to 2**63 and 2**64 as
    floats, which overflow the cast."""
    limits = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
    low, high = float(limits.min), float(limits.max)
    if int(high) > limits.max:
        high = np.nextafter(high, 0.0)
    return low, high


# ------------------------------------------------------------ portable state


def portable_dtype(dtype):
    """``dtype`` as plain Python values (no numpy or pandas objects), for a saved
    model whose loading must run no code of those libraries' choosing."""
    if isinstance(dtype, np.dtype):
        return {"numpy": dtype.str if dtype.kind != "O" else "object"}
    if isinstance(dtype, pd.CategoricalDtype):
        return {
            "category": np.asarray(dtype.categories, dtype=object).tolist(),
            "ordered": bool(dtype.ordered),
        }
    if isinstance(dtype, pd.StringDtype):
        return {"string": dtype.storage, "nan": dtype.na_value is np.nan}
    return {"pandas": str(dtype)}


def dtype_from_portable(spec):
    """The dtype ``portable_dtype`` described."""
    if "numpy" in spec:
        return np.dtype(spec["numpy"])
    if "category" in spec:
        return pd.CategoricalDtype(spec["category"], ordered=spec["ordered"])
    if "string" in spec:
        na_value = np.nan if spec["nan"] else pd.NA
        return pd.StringDtype(storage=spec["string"], na_value=na_value)
    return pd.api.types.pandas_dtype(spec["pandas"])


def with_dtypes(schema, convert):
    """A copy of ``schema`` whose columns' dtypes went through ``convert``."""
    columns = [replace(spec, dtype=convert(spec.dtype)) for spec in schema.columns]
    return TableSchema(
        columns, is_frame=schema.is_frame, mask_inputs=schema.mask_inputs
    )
