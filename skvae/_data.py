"""The data layer: the caller's table as the model's batches on its device.

The one place rows travel through, for training and for every inference method
alike. Training rows are encoded once (``TrainingRows``): whole-table on the
model's device when they fit there, else kept in host memory and moved a batch
at a time. Inference streams the caller's table in batches (``map_batches``):
each batch is encoded, moved, run and its result written into a host array, so
no method ever holds the whole table in the model's layout.

Torch, numpy and the schema; nothing here knows about scikit-learn or training.
"""

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from ._schema import RowBlocks, infinity_error, is_blocked, row_chunks

# Memory one inference batch may take on each kind of device (activations of
# every layer, and of every draw for the importance-sampled methods): large
# batches amortise per-call overhead, the bound keeps a huge table from
# building one giant tensor. On the CPU smaller batches stay in cache: 32 MiB
# (7,700 rows of the default network on 64 columns) encoded 527k rows/s where
# 64 and 128 MiB gave 500k and 437k.
INFERENCE_BYTES = {"cpu": 32 * 2**20, "cuda": 1024 * 2**20}

# torch >= 2.5 names it torch.OutOfMemoryError; torch.cuda's is the same class.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

# Training rows stay resident on a GPU while they take at most this share of its
# free memory; above it they stay in host memory and travel a batch at a time.
RESIDENT_SHARE = 0.5


@dataclass
class ModelData:
    """Rows as the model sees them (laid out by ``skvae._schema``).

    ``targets`` is what the likelihood scores, one entry per column;
    ``observed`` is 1 where an entry was observed and 0 where it is missing
    (None: all observed). The encoder reads both (``TableReader``).
    """

    targets: torch.Tensor
    observed: torch.Tensor | None = None

    def __getitem__(self, rows):
        return ModelData(
            self.targets[rows], None if self.observed is None else self.observed[rows]
        )

    def __len__(self):
        return self.targets.shape[0]

    @property
    def device(self):
        return self.targets.device

    @property
    def nbytes(self):
        observed = 0 if self.observed is None else self.observed.nbytes
        return self.targets.nbytes + observed

    def to(self, device):
        if self.device == torch.device(device):
            return self
        # Plain copies: pinning the host side first would copy it once more (the
        # whole table, when it is moved to a GPU to stay there).
        observed = None if self.observed is None else self.observed.to(device)
        return ModelData(self.targets.to(device), observed)


def as_model_data(x):
    """``x`` itself if it is ``ModelData``, else a fully observed tensor wrapped."""
    return x if isinstance(x, ModelData) else ModelData(x)


def take_rows(X, rows):
    """Rows of an array or a DataFrame by position (a slice or an index array);
    of a sparse matrix, densified: one batch at a time, never the whole matrix."""
    if isinstance(X, pd.DataFrame):
        return X.iloc[rows]
    if sparse.issparse(X):
        return X[rows].toarray()
    return X[rows]


def _standardises_on_the_fly(schema, X):
    """True for a float array of Gaussian columns: the rows the model sees are
    ``(X - mean) / scale``, cheap enough to compute batch by batch."""
    return (
        isinstance(X, np.ndarray)
        and X.dtype in (np.float32, np.float64)
        and schema.all_gaussian
        and schema.identity_order
    )


def standardises_on_device(schema, X, device):
    """True when ``encode_rows`` sends the float array ``X`` to ``device`` (a
    GPU) as it is, to be standardised and checked for infinities there."""
    return torch.device(device).type != "cpu" and _standardises_on_the_fly(schema, X)


def encode_rows(schema, X, device, handle_unknown="error"):
    """The rows of the caller's table ``X`` as ``ModelData`` on ``device``.

    A float array of Gaussian columns bound for a GPU travels as it is and is
    standardised there: the host's only work is the copy. Its infinities are
    looked for there too, batch by batch (the estimator's validation leaves
    them to this step): on the host, one pass over a 1,000,000 x 100 float32
    array takes about 50 ms, as long as copying it to the GPU. On the CPU the
    schema's chunked numpy pass is the faster of the two (transform of
    200,000 x 64 float32: 502-536k rows/s against 446-449k in torch).
    """
    device = torch.device(device)
    if standardises_on_device(schema, X, device):
        return _Standardiser(schema, device, refuse_infinity=True)(_shareable(X))
    encoded = schema.encode(X, handle_unknown)
    observed = encoded.observed
    return ModelData(
        torch.from_numpy(encoded.targets),  # shares the float32 buffer
        None if observed is None else torch.from_numpy(observed),
    ).to(device)


def _shareable(X):
    """``X`` as a tensor sharing its memory where torch can (any non-negative
    strides: a DataFrame's values are often column-major), else a contiguous copy."""
    if not all(stride >= 0 for stride in X.strides):
        X = np.ascontiguousarray(X)
    with warnings.catch_warnings():
        # A read-only array (np.load(mmap_mode="r")) is shared all the same: the
        # tensor is only ever read.
        warnings.filterwarnings(
            "ignore", message=".*not writable", category=UserWarning
        )
        return torch.from_numpy(X)


def _any_nan(X, rows=None):
    """True when the float array ``X`` (its ``rows``) holds a NaN, checked a
    chunk at a time."""
    return any(np.isnan(chunk).any() for chunk in row_chunks(X, rows))


class _Standardiser:
    """``(x - mean) / scale`` in x's own precision, then float32; NaN -> missing.

    float32 input stays float32 (subtracting a nearby mean is exact, so nothing
    is lost that the input held); float64 input is standardised in float64
    before the cast, so that a column like 1e8 + noise keeps its spread.
    With ``refuse_infinity``, a batch holding an infinity raises ``ValueError``
    (a host sync: for inference batches, never for training steps).
    """

    def __init__(self, schema, device, may_miss=True, refuse_infinity=False):
        self.device = device
        self.may_miss = may_miss
        self.refuse_infinity = refuse_infinity
        self.mean = torch.as_tensor(schema.mean, device=device)
        self.scale = torch.as_tensor(schema.scale, device=device)
        self.names = [spec.name for spec in schema.columns]

    def __call__(self, x):
        x = x.to(self.device)
        if self.refuse_infinity and bool(torch.isinf(x).any()):
            column = int(torch.isinf(x).any(dim=0).nonzero()[0, 0])
            raise infinity_error(self.names[column])
        mean = self.mean.to(x.dtype)
        targets = ((x - mean) / self.scale.to(x.dtype)).float()
        if not self.may_miss:
            return ModelData(targets)
        missing = torch.isnan(targets)
        if self.device.type == "cpu" and not bool(missing.any()):
            return ModelData(targets)  # (on a GPU the check would cost a sync)
        return ModelData(targets.masked_fill_(missing, 0.0), (~missing).float())


class TrainingRows:
    """Encoded training rows, and their minibatches on the model's device.

    Resident on the device (one copy of the table, indexed there) unless they
    would take more than ``RESIDENT_SHARE`` of a GPU's free memory; then they
    stay in host memory and each batch is gathered there and moved.

    Parameters
    ----------
    data : ModelData
        The rows, on the host or already on ``device``.
    device : torch.device
        Where the model is.
    """

    def __init__(self, data, device):
        device = torch.device(device)
        self.device = device
        self.resident = _fits_on(device, data.nbytes)
        self.data = data.to(device) if self.resident else data

    @classmethod
    def from_table(cls, schema, X, device, handle_unknown="error", rows=None):
        """The training rows of the caller's table ``X`` (its ``rows``, an index
        array; None: all).

        A float array of Gaussian columns is not copied at all: the rows are
        standardised a batch at a time as training draws them
        (``StandardisedRows``), so a fit holds no second copy of the table.
        """
        if is_blocked(X):
            return BlockedRows(schema, X, device)
        if sparse.issparse(X):
            return SparseRows(schema, X, device, rows)
        if _standardises_on_the_fly(schema, X):
            return StandardisedRows(schema, X, device, rows)
        if rows is not None:
            X = take_rows(X, rows)
        return cls(encode_rows(schema, X, "cpu", handle_unknown), device)

    def __len__(self):
        return len(self.data)

    def n_batches(self, batch_size):
        """Minibatches of ``batch_size`` rows in one epoch."""
        return math.ceil(len(self) / batch_size)

    def epoch(self, generator, n_components):
        """One epoch's segments: ``(order, noise)`` pairs, ``order`` the
        shuffled positions of the segment's rows (for ``batch``, on
        ``storage_device``), ``noise`` one standard normal draw of z per row.

        Rows held whole make one segment: one shuffle and one draw an epoch.
        """
        device = generator.device
        order = torch.randperm(len(self), generator=generator, device=device)
        noise = torch.randn(
            (1, len(self), n_components), generator=generator, device=device
        )
        # Rows kept in host memory are gathered there: move the order once an
        # epoch, not each batch's indices each step (a device sync on a GPU).
        yield order.to(self.storage_device), noise

    @property
    def storage_device(self):
        """Where the rows are kept: ``batch`` takes row indices there."""
        return self.data.device

    def batch(self, rows):
        """The rows at positions ``rows`` (an index tensor on ``storage_device``),
        on the model's device."""
        return self.data[rows].to(self.device)

    def all(self):
        """Every row, on the device (for small validation splits)."""
        return self.data.to(self.device)


class StandardisedRows(TrainingRows):
    """Training rows of a float array, standardised batch by batch.

    The caller's array is shared, not copied (on a GPU it is copied once, as
    it is, when it fits); each minibatch is gathered and standardised on the
    device. Costs one subtraction and division per entry and step, which is
    nothing beside the networks, and saves the one-off pass and the copy.
    """

    def __init__(self, schema, X, device, rows=None):
        device = torch.device(device)
        self.device = device
        raw = _shareable(X)
        self.resident = _fits_on(device, raw.nbytes)
        self.raw = raw.to(device) if self.resident else raw
        # The rows trained on, as positions in the array (early stopping holds
        # some out); None: all of them, in order.
        self.rows = None if rows is None else torch.as_tensor(rows).to(self.raw.device)
        # Without holes (checked once, on the host) no batch needs a mask. The
        # schema cannot tell: a later partial_fit chunk may have holes its first
        # chunk had not.
        self._standardise = _Standardiser(schema, device, _any_nan(X, rows))
        self._standardise_any = _Standardiser(schema, device)

    def __len__(self):
        return self.raw.shape[0] if self.rows is None else len(self.rows)

    @property
    def storage_device(self):
        return self.raw.device

    def batch(self, rows):
        rows = rows if self.rows is None else self.rows[rows]
        return self._standardise(self.raw[rows])

    def all(self):
        # Validation rows were not seen by the statistics: they may have holes.
        return self._standardise_any(
            self.raw if self.rows is None else self.raw[self.rows]
        )


class BlockedRows(TrainingRows):
    """Training rows of a dask array, read a block at a time: data larger than
    memory.

    Each epoch visits the blocks in a shuffled order and the rows of each block
    in a shuffled order; minibatches never straddle two blocks. While one
    block trains, the next is read in a background thread, so at most two
    blocks are in memory (plus a standardised minibatch), whatever the table's
    size. Rows are standardised a batch at a time, as in ``StandardisedRows``.
    """

    def __init__(self, schema, X, device):
        self.device = torch.device(device)
        self.resident = False
        self.blocks = RowBlocks(X)
        self.sizes = self.blocks.sizes
        self._standardise = _Standardiser(schema, self.device)
        self._block = None

    def __len__(self):
        return sum(self.sizes)

    def n_batches(self, batch_size):
        return sum(math.ceil(n / batch_size) for n in self.sizes)

    @property
    def storage_device(self):
        return self.device

    def _read(self, b):
        return _shareable(self.blocks.read(b)).to(self.device)

    def epoch(self, generator, n_components):
        device = generator.device
        blocks = torch.randperm(len(self.sizes), generator=generator, device=device)
        blocks = blocks.tolist()
        with ThreadPoolExecutor(max_workers=1) as reader:
            upcoming = reader.submit(self._read, blocks[0])
            for k, b in enumerate(blocks):
                self._block = upcoming.result()
                if k + 1 < len(blocks):
                    upcoming = reader.submit(self._read, blocks[k + 1])
                n_rows = self.sizes[b]
                order = torch.randperm(n_rows, generator=generator, device=device)
                noise = torch.randn(
                    (1, n_rows, n_components), generator=generator, device=device
                )
                yield order.to(self.device), noise
        self._block = None

    def batch(self, rows):
        """The rows at positions ``rows`` of the block being trained on."""
        return self._standardise(self._block[rows])

    def all(self):
        raise TypeError(
            "The rows of a dask array are read a block at a time, never all at once."
        )


class SparseRows(TrainingRows):
    """Training rows of a scipy sparse matrix, densified a minibatch at a time.

    Memory stays the matrix's non-zeros (held in CSR form, whose rows slice
    cheaply) plus one dense batch; each batch is standardised as
    ``StandardisedRows`` does.
    """

    def __init__(self, schema, X, device, rows=None):
        self.device = torch.device(device)
        self.resident = False
        self.X = X.tocsr()
        self.rows = None if rows is None else np.asarray(rows)
        self._standardise = _Standardiser(schema, self.device, may_miss=False)

    def __len__(self):
        return self.X.shape[0] if self.rows is None else len(self.rows)

    @property
    def storage_device(self):
        return torch.device("cpu")

    def batch(self, rows):
        rows = rows.numpy()
        if self.rows is not None:
            rows = self.rows[rows]
        return self._standardise(torch.from_numpy(self.X[rows].toarray()))

    def all(self):
        return self.batch(torch.arange(len(self)))


def as_training_rows(x, device=None):
    """``x`` as ``TrainingRows`` (a tensor or ``ModelData`` stays where it is)."""
    if isinstance(x, TrainingRows):
        return x
    x = as_model_data(x)
    return TrainingRows(x, x.device if device is None else device)


def _fits_on(device, nbytes):
    """Whether ``nbytes`` of rows may stay on ``device`` (host memory: always)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= RESIDENT_SHARE * free


def inference_batch_rows(model, device, n_draws=1, input_width=0):
    """Rows per inference batch: as many as ``INFERENCE_BYTES`` allow.

    Without autograd a layer's output lives only until the next layer has read
    it, so a row costs about two of the widest layer's outputs, plus the
    likelihood's mean (every level's probability for a label column), for each
    draw of the importance-sampled methods; and, for a sparse input densified
    a batch at a time, ``input_width`` float64 and float32 entries.
    """
    widths = [
        layer.out_features
        for layer in model.modules()
        if isinstance(layer, torch.nn.Linear)
    ]
    likelihood = model.likelihood
    n_values = getattr(likelihood, "n_values", likelihood.n_params)
    per_row = 4 * n_draws * (2 * max(widths, default=1) + n_values) + 12 * input_width
    budget = INFERENCE_BYTES.get(torch.device(device).type, INFERENCE_BYTES["cpu"])
    rows = budget // per_row
    if input_width:
        # The densified copy is made in host memory, whatever the device: it
        # keeps to the host's budget, not to a GPU's larger one.
        rows = min(rows, INFERENCE_BYTES["cpu"] // (12 * input_width))
    return int(max(1, min(2**20, rows)))


def map_batches(fn, n_rows, load, batch_rows):
    """``fn(load(rows))`` for consecutive slices of rows, in inference mode.

    ``fn`` returns a tensor or a tuple of tensors whose first dimension is the
    batch's rows; the results are gathered into float arrays on the host (their
    dtype the tensors'), one per returned tensor. A batch that runs the device
    out of memory is retried at half the rows, down to one row; one row that
    does not fit raises ``DeviceMemoryError``.
    """
    outputs = None
    start = 0
    with torch.inference_mode():
        while start < n_rows:
            rows = slice(start, min(start + batch_rows, n_rows))
            try:
                results = fn(load(rows))
            except OutOfMemoryError as error:
                _release_cached_memory()
                tried = rows.stop - rows.start
                if tried == 1:
                    raise DeviceMemoryError(
                        "The device ran out of memory on a single row "
                        f"({error}). Use fewer n_importance_samples or a smaller "
                        "model, or move it to the CPU."
                    ) from error
                batch_rows = max(1, tried // 2)
                continue
            results = (results,) if isinstance(results, torch.Tensor) else results
            if outputs is None:
                outputs = [
                    np.empty(
                        (n_rows, *r.shape[1:]),
                        dtype=torch.empty((), dtype=r.dtype).numpy().dtype,
                    )
                    for r in results
                ]
            for output, result in zip(outputs, results, strict=True):
                output[rows] = result.cpu().numpy()
            start = rows.stop
    return outputs


class DeviceMemoryError(ValueError):
    """The model's device ran out of memory, with what to change."""


def _release_cached_memory():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
