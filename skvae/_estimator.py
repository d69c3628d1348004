"""The scikit-learn facade: parameters, validation, numpy <-> tensors, fitted state.

This is the only module that knows scikit-learn. The networks, the likelihoods and
the training loop live in their own torch-only modules.
"""

import copy
import math
import warnings
from dataclasses import asdict
from numbers import Integral, Real

import narwhals.stable.v2 as nw
import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype
from scipy import sparse
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._concurrency import reads_fitted_state, state_lock
from ._data import (
    INFINITY_MESSAGE,
    DeviceMemoryError,
    OutOfMemoryError,
    TrainingRows,
    encode_rows,
    inference_batch_rows,
    map_batches,
    standardises_on_device,
    take_rows,
)
from ._networks import ACTIVATIONS, NumpyMLP, build_vae
from ._onnx import export as onnx_export
from ._progress import ProgressBar
from ._resources import check_fits as check_memory
from ._resources import check_output_fits
from ._resources import estimate as estimate_memory
from ._schema import (
    KINDS,
    build_schema,
    dtype_from_portable,
    is_blocked,
    portable_dtype,
    row_chunks,
    with_dtypes,
)
from ._training import (
    NonFiniteLossError,
    TrainingConfig,
    conditional_mean,
    fixed_noise,
    importance_weighted_bound,
    make_optimizer,
    plan_budget,
    train,
)

_MAX_SEED = np.iinfo(np.int32).max

# The most epochs one fit may run: 100,000 steps of a small table take minutes.
_MAX_EPOCHS = 100_000

# transform encodes up to this many rows on the CPU with numpy rather than torch:
# for a few rows torch's per-operation overhead dominates (see NumpyMLP).
_NUMPY_PATH_MAX_ROWS = 16


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but no CUDA device is available to torch "
            "(torch.cuda.is_available() is False). Use device='cpu' or device='auto'."
        )
    return torch.device(device)


def _loading_device(device):
    """Where a saved model is rebuilt: the device ``fit`` would choose, or the
    CPU, with a warning, when the model asks for CUDA and this machine has
    none (a saved model loads anywhere)."""
    if device == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            "This model was saved with device='cuda' but no CUDA device is "
            "available here: it is loaded on the CPU. Set device='cpu' (or "
            "'auto') before fitting it again.",
            UserWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    return _resolve_device(device)


def _plain_float_rows(X):
    """True for a 2-D float32/float64 numpy array with at least one row."""
    return (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.shape[0] > 0
        and X.dtype in (np.float32, np.float64)
    )


def _make_generator(seed, device):
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _frame_library(X):
    """The module name of a dataframe that is not pandas (``"polars"``, ...),
    as narwhals sees it; None for pandas frames and everything else."""
    if isinstance(X, pd.DataFrame | np.ndarray):
        return None
    frame = nw.from_native(X, eager_only=True, pass_through=True)
    if not isinstance(frame, nw.DataFrame):
        return None
    return nw.get_native_namespace(frame).__name__


def _as_pandas(X):
    """``(X, library)``: a polars (or other narwhals-known) dataframe as pandas
    and its library's name; anything else as it is, with None. The schema reads
    pandas columns, whatever library the caller uses."""
    library = _frame_library(X)
    if library is None:
        return X, None
    try:
        return nw.from_native(X, eager_only=True).to_pandas(), library
    except ImportError as exc:  # polars converts through pyarrow
        raise ImportError(
            f"Reading a {library} DataFrame needs pyarrow ({exc}). Install it with "
            "pip install pyarrow, or pass a pandas DataFrame."
        ) from exc


def _in_library(result, library):
    """``result`` (a pandas frame) in the caller's dataframe ``library``."""
    if library is None or not isinstance(result, pd.DataFrame):
        return result
    import pyarrow  # present: reading the caller's frame needed it

    table = pyarrow.Table.from_pandas(result, preserve_index=False)
    return nw.from_arrow(table, backend=library).to_native()


# Version of the saved state (__getstate__): a later skvae that changes it reads
# the formats it knows and refuses newer ones with a clear message.
_STATE_FORMAT = 1


def _map_tree(value, leaf_type, convert):
    """``value`` with ``convert`` applied to every ``leaf_type`` inside it
    (through dicts, lists and tuples): tensors to numpy arrays and back."""
    if isinstance(value, leaf_type):
        return convert(value)
    if isinstance(value, dict):
        return {key: _map_tree(item, leaf_type, convert) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_tree(item, leaf_type, convert) for item in value)
    return value


def _to_numpy(tensor):
    # A copy: a CPU tensor's numpy view would alias the live weights.
    return tensor.detach().cpu().numpy().copy()


def _is_fitted_name(name, private):
    """Whether attribute ``name`` is fitted state: ends in ``_`` (scikit-learn's
    convention) or is one of the ``private`` fitted names."""
    return (name.endswith("_") and not name.startswith("__")) or name in private


def _refuse_non_finite(values, method):
    """Never hand back NaN or infinities: say what went wrong instead."""
    finite = np.isfinite(values)
    if finite.all():
        return
    rows = int((~finite.reshape(len(values), -1)).any(axis=1).sum())
    raise ValueError(
        f"{method} gave non-finite values for {rows} of {len(values)} rows: the "
        "model's weights have diverged (refit with a smaller learning_rate_init), "
        "or those rows lie far outside the range of the training data (check them "
        "for extreme values)."
    )


def _dense_width(X):
    """Columns a sparse `X` has once a batch of it is densified (0 otherwise)."""
    return X.shape[1] if sparse.issparse(X) else 0


def _seed_source(random_state):
    """``check_random_state``, except that None draws fresh OS entropy.

    scikit-learn maps None to numpy's global RandomState; drawing seeds from it
    would advance the caller's global random state.
    """
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    return check_random_state(random_state)


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


# Parameters added after models were first saved, with the value that gives a
# model saved before them its old behaviour.
_ADDED_PARAMETERS = {"input_noise": 0.0, "precision": "float32"}


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder for non-linear, probabilistic dimensionality reduction.

    An MLP encoder maps each row x to the mean and log-variance of a diagonal
    Gaussian q(z|x) over ``n_components`` latent dimensions, with prior
    p(z) = N(0, I). An MLP decoder maps z to the parameters of p(x|z) (see
    ``likelihood``). Training maximises the evidence lower bound (ELBO)
    ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))`` per row with minibatch Adam,
    the reparameterisation trick and the closed-form Gaussian KL.

    Tables go in as they are: a numpy array, or a pandas DataFrame mixing
    numbers, booleans, categories and strings. Each column gets its own
    likelihood (see ``likelihood`` and ``schema_``). Numeric columns are
    standardised internally with the training data's mean and standard
    deviation; :meth:`inverse_transform` and :meth:`sample` answer in the caller's
    units, as a DataFrame with the training columns and dtypes when the model was
    fitted on one.

    Missing entries (NaN, None, ``pd.NA``) are allowed everywhere: a row's ELBO
    counts its observed entries only, and when the training data has holes the
    encoder also reads one observed-flag per column. :meth:`impute` fills holes
    with the model's predictions; :class:`VAEImputer` does it in a pipeline.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.
    hidden_layer_sizes : int or array-like of int, default=(512, 256)
        Widths of the encoder's hidden layers; the decoder uses them in reverse
        order. An empty tuple gives a linear encoder and decoder.
    activation : {"relu", "elu", "gelu", "silu", "tanh", "leaky_relu"}, default="relu"
        Non-linearity between hidden layers.
    likelihood : {"auto", "gaussian", "bernoulli", "categorical", "poisson"} or \
            dict, default="auto"
        The distribution p(x|z) of each column given the latent code; a row's
        log-likelihood is the sum of its columns'.

        - ``"gaussian"``: the decoder predicts the mean, the variance is learned
          per column (bounded below, so near-constant columns cannot make the
          likelihood diverge); values are standardised internally.
        - ``"bernoulli"``: the decoder predicts a probability; for numbers in
          [0, 1] (not standardised), booleans, and columns of two labels.
        - ``"categorical"``: the decoder predicts a probability per level seen in
          training (softmax); the encoder reads the column one-hot. A column
          of more than 64 levels is read through a learned embedding, and its
          logits come from a factorised output layer: still an exact softmax
          over every level, at a fraction of the cost.
        - ``"poisson"``: the decoder predicts a rate, for non-negative integer
          counts.

        ``"auto"`` picks per column: Gaussian for numbers, Bernoulli for
        booleans and two-level label columns, categorical for other category,
        string and object columns. (A numeric column with two values stays
        Gaussian: new rows may hold others.) A single kind applies to every
        column. A dict maps column names (positions for arrays) to kinds and
        leaves the other columns automatic, for example
        ``{"n_children": "poisson"}``. The result is in ``schema_``.
    beta : float, default=1.0
        Weight of the KL term. ``beta=1`` maximises the true ELBO; larger values
        give a smoother, more disentangled latent space at the cost of
        reconstruction.
    batch_size : int or "auto", default="auto"
        Rows per minibatch, clipped to the number of rows. ``"auto"``: 128 for
        tables of up to 2,048 rows (what the defaults were tuned on); for
        larger ones 128 times the square root of ``n_rows / 2048``, rounded to
        a power of two, at most 8,192 (1,024 at 100,000 rows, 2,048 at a
        million). See ``max_iter`` and the user guide's "Training budget".
    learning_rate : {"step", "constant"}, default="step"
        Learning-rate schedule of :meth:`fit`. ``"step"`` trains at
        ``learning_rate_init`` for the first 70 % of the ``max_iter`` epochs of
        each call, then at a quarter of it, so that the weights settle: lower
        reconstruction error in the same time. Training that stops earlier
        (``early_stopping``, or ``n_iter_no_change`` epochs without progress)
        may end before the step, and each ``warm_start`` call starts again at
        the full rate. ``"constant"`` keeps ``learning_rate_init`` throughout;
        it gave a tighter held-out likelihood bound on smooth low-noise data,
        whose learned variances are still shrinking when the rate would step
        down. :meth:`partial_fit` always trains at ``learning_rate_init``: it
        cannot know how many passes are to come.
    learning_rate_init : float, default=2e-3
        Initial step size of the Adam optimiser.
    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the training data). ``"auto"``
        plans the budget from the number of training rows: 150 epochs up to
        2,048 rows (1,500 steps on the digits' 1,257 rows); beyond, as many
        epochs as see ``150 * 2048 * (n_rows / 2048) ** 0.4`` rows, at least 3
        (15 epochs at 100,000 rows, 4 at a million), so that cost grows like
        ``n_rows ** 0.4`` rather than ``150 * n_rows``. A fit that runs its
        planned budget to the end raises no ``ConvergenceWarning`` (an explicit
        int that is reached does). The plan is in ``training_plan_``. At most
        100,000, so that no value can make a fit run for days; train longer
        with ``partial_fit`` in a loop.
    tol : float, default=1e-4
        Minimum improvement, in nats per row, of the monitored value (the
        validation ELBO with ``early_stopping``, else the training loss) that
        counts as progress.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (drawn with
        ``random_state``), stop when their ELBO stops improving, and restore
        the weights of the best epoch after the warm-up. The standardisation
        statistics come from the training part only. With ``warm_start``, use an
        int ``random_state`` so that every call holds out the same rows.
    validation_fraction : float, default=0.1
        Share of the rows held out when ``early_stopping=True``.
    n_iter_no_change : int or "auto", default="auto"
        Training stops once this many consecutive epochs after the KL warm-up
        improve the monitored value by less than ``tol``. ``"auto"``: 10
        epochs, or more where an epoch has fewer than 16 minibatches, so that
        patience never spans fewer than 160 steps (a table of 233 rows at
        batch 128 waits 80 epochs; ten epochs of two noisy steps each used to
        stop such fits a third of the way through their plan). The value used
        is in ``training_plan_``.
    warmup_epochs : float or "auto", default="auto"
        Epochs (fractions count) over which the weight of the KL term ramps
        linearly from 0 to ``beta`` (KL annealing), which keeps the latent
        space from collapsing onto the prior early in training. Patience for
        stopping counts only after the warm-up. ``"auto"``: a fifteenth of the
        planned epochs (10 of 150; one epoch of 15 at 100,000 rows); for
        :meth:`partial_fit`, a fifteenth of what ``fit`` would plan for the
        first chunk's size, kept for the later chunks.
    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added, during training only, to
        the standardised numeric (Gaussian) entries the encoder reads; the
        decoder still scores the clean row (a denoising VAE). It regularises
        the encoder on small tables: on the digits (1,257 training rows),
        ``0.25`` raised the held-out 5-NN accuracy of the codes from 0.844 to
        0.852 at ``n_components=2`` and from 0.946 to 0.960 at 10 (medians of
        six seeds, ``benchmarks/README.md``), with reconstruction errors within
        the seeds' spread. ``transform`` and every other method read the rows
        as they are; ``loss_curve_`` and ``history_`` record the objective
        trained on, that of the noisy encoder inputs. Only Gaussian columns
        get noise (a table without any gets a warning).
    precision : {"float32", "bfloat16"}, default="float32"
        Arithmetic of the training steps. ``"bfloat16"`` trains in mixed
        precision: the networks' matrix products (and the output projection of
        label columns of more than 64 levels) run in bfloat16 (under
        ``torch.autocast``), while the weights, the optimiser, the likelihood's
        scores and the KL stay in float32, and every other method (``transform``,
        ``score``, early stopping's validation score...) runs in float32. It
        pays where the hardware multiplies bfloat16 fast and the batches are
        large: on a 2-core CPU with AMX, default fits of 1,000,000 x 100 and
        100,000 x 50 took 31.9 s instead of 63.7 s and 12.6 s instead of
        22.2 s, at held-out reconstruction errors 2.3 % and 0.6 % higher;
        the digits (batches of 128) trained no faster
        (``benchmarks/README.md``, "Mixed precision"). On CPUs without
        bfloat16 units it is slower. Training steps are then never replayed
        from CUDA graphs.
    n_importance_samples : int, default=16
        Draws of z per row in :meth:`score_samples` and :meth:`score`. More
        draws give a tighter (higher) bound of log p(x) in expectation, at a
        proportional cost; 1 gives a one-draw ELBO.
    warm_start : bool, default=False
        When True and the model is fitted, :meth:`fit` continues training from
        the current weights and optimiser state instead of starting over.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the minibatch order and the
        reparameterisation noise. An int gives bit-identical results on CPU across
        calls. The global torch and numpy random states are never touched.
    verbose : int, default=0
        When positive, show a progress bar over epochs with the loss, its
        reconstruction and KL terms, the KL weight, the learning rate and the
        validation ELBO.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the networks train and run. ``"auto"`` picks CUDA when available.
    handle_unknown : {"error", "missing"}, default="error"
        What a label not seen during fit does in :meth:`transform`,
        :meth:`score_samples` and later training calls: raise a ``ValueError``
        naming it, or count it as a missing entry.

    Attributes
    ----------
    schema_ : TableSchema
        How each column is modelled: its dtype, likelihood, the levels seen in
        training and its share of missing entries. ``schema_.to_frame()``
        gives it as a DataFrame with one row per column.
    module_ : torch.nn.Module
        The trained VAE, with ``encoder``, ``decoder`` and ``likelihood``
        sub-modules.
    mean_ : ndarray of shape (`n_features_in_`,)
        Per-column mean subtracted before encoding (0 for columns that are not
        Gaussian).
    scale_ : ndarray of shape (`n_features_in_`,)
        Per-column standard deviation divided out before encoding (1 for
        columns that are not Gaussian, and for constant columns).
    optimizer_ : torch.optim.Adam
        The optimiser, with its state, used by ``warm_start`` and
        :meth:`partial_fit` to continue training. Its rate is the last epoch's
        (a quarter of ``learning_rate_init`` after a ``"step"`` fit that ran to
        the end); every training call sets it afresh.
    loss_curve_ : list of float
        Training objective after each epoch: the mean negative ELBO per row in
        nats, in the units of ``X``, with the KL term weighted by ``beta`` (also
        during the warm-up, so that epochs compare).
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss``, ``reconstruction`` (mean
        -E_q[log p(x|z)]), ``kl`` (mean KL(q(z|x) || p(z))), ``kl_weight`` (the
        KL weight at the epoch's last step), ``learning_rate``,
        ``validation_score``, and the training call's progress: ``steps``
        (minibatch steps so far), ``samples`` (rows seen so far), ``seconds``
        (time so far) and ``rows_per_second``.
    training_plan_ : dict
        The last training call's budget, "auto" values resolved:
        ``batch_size``, ``max_iter`` (epochs), ``warmup_epochs``,
        ``n_iter_no_change`` (the patience, in epochs; None after
        :meth:`partial_fit`, whose single epoch never waits), ``max_steps`` and
        ``max_samples``, and ``n_rows`` (the training rows); and
        ``cuda_graphs``, whether its full batches replayed their forward and
        backward passes from captured CUDA graphs (experimental: on a GPU,
        for a call of at least 200 steps, with ``SKVAE_CUDA_GRAPHS=1``, never
        with ``input_noise`` or for a dask array).
    best_loss_ : float or None
        Lowest value of ``loss_curve_``; None with ``early_stopping=True``.
    validation_scores_ : list of float or None
        Mean ELBO of the validation rows after each epoch, in nats (one fixed
        draw of z per row, the same every epoch); None without
        ``early_stopping``.
    best_validation_score_ : float or None
        Validation ELBO of the weights that were kept: the best after the
        warm-up, counting on a warm start the weights training started from.
        None without ``early_stopping``.
    n_iter_ : int
        Number of epochs run, over all calls of a warm start or
        :meth:`partial_fit`.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction; a VAE with a
        linear decoder and Gaussian likelihood recovers probabilistic PCA.
    sklearn.decomposition.KernelPCA : Non-linear, but with no generative model.

    Notes
    -----
    :meth:`score_samples` returns the importance-weighted (IWAE) lower bound of
    log p(x) [2]_. It uses the same draws of z for every row and every call, so
    it is deterministic and does not depend on which rows are scored together.

    Threads: torch's intra-op thread pool follows ``threadpoolctl`` limits, and
    joblib's process workers (``GridSearchCV(n_jobs=k)``, ``cross_validate``)
    cap each worker at its share of the cores, so parallel searches do not
    oversubscribe the machine. Use ``threadpoolctl.threadpool_limits`` to cap
    threads by hand.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes",
       ICLR 2014. https://arxiv.org/abs/1312.6114
    .. [2] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance Weighted
       Autoencoders", ICLR 2016. https://arxiv.org/abs/1509.00519

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAETransformer(n_components=2, max_iter=5, warmup_epochs=0,
    ...                      random_state=0)
    >>> Z = vae.fit_transform(X)
    >>> Z.shape
    (1797, 2)
    >>> vae.inverse_transform(Z).shape
    (1797, 64)
    >>> vae.sample(3, random_state=0).shape
    (3, 64)
    >>> vae.score_samples(X[:4]).shape
    (4,)
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions({"auto", *KINDS}), dict],
        "beta": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "learning_rate": [StrOptions({"step", "constant"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [
            Interval(Integral, 1, _MAX_EPOCHS, closed="both"),
            StrOptions({"auto"}),
        ],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "warmup_epochs": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "input_noise": [Interval(Real, 0, None, closed="left")],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "handle_unknown": [StrOptions({"error", "missing"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(512, 256),
        activation="relu",
        likelihood="auto",
        beta=1.0,
        batch_size="auto",
        learning_rate="step",
        learning_rate_init=2e-3,
        max_iter="auto",
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change="auto",
        warmup_epochs="auto",
        input_noise=0.0,
        precision="float32",
        n_importance_samples=16,
        warm_start=False,
        random_state=None,
        verbose=0,
        device="auto",
        handle_unknown="error",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.beta = beta
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warmup_epochs = warmup_epochs
        self.input_noise = input_noise
        self.precision = precision
        self.n_importance_samples = n_importance_samples
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None):
        """Train the VAE on `X`.

        With ``warm_start=True`` and a fitted model, training continues from the
        current weights and optimiser state for up to ``max_iter`` more epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: a numpy array of numbers, or a pandas DataFrame whose
            columns may also be booleans, categories or strings; missing entries
            are allowed.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAETransformer
            The fitted estimator.
        """
        return self._fit_or_reset(X, incremental=False)

    def partial_fit(self, X, y=None):
        """Train for exactly one epoch (one pass) over the rows of `X`.

        The first call initialises the model, taking the standardisation
        statistics from this first batch of rows; later calls continue with the
        same weights and optimiser state. ``early_stopping`` and ``max_iter`` do
        not apply. Made for data that arrives in chunks, and for
        ``dask_ml.wrappers.Incremental`` and incremental hyper-parameter searches.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAETransformer
            The updated estimator.
        """
        return self._fit_or_reset(X, incremental=True)

    def _fit_or_reset(self, X, incremental):
        """Run ``_fit``; on failure, never leave a half-fitted estimator behind.

        A call that starts from scratch and fails leaves the estimator unfitted.
        A call that continues a fitted model (``partial_fit``, ``warm_start``)
        and fails, on bad input or because training diverged, keeps the model
        it had: training ran on a private copy of the networks.
        """
        continuing = self._continues_training(incremental)
        # Trained on a private copy, published in one step: other threads'
        # inference sees the model before this call or after it, never a mix
        # (see skvae._concurrency).
        try:
            work = self._private_copy(continuing)
            work._fit(X, incremental)
        except OutOfMemoryError as error:
            if not continuing:
                self._publish(None)
            raise DeviceMemoryError(
                f"The device ran out of memory while fitting ({error}). Use a "
                f"smaller batch_size (now {self.batch_size!r}) or smaller "
                f"hidden_layer_sizes (now {self.hidden_layer_sizes!r}), or "
                "device='cpu'."
            ) from error
        except BaseException:
            if not continuing:
                self._publish(None)
            raise
        self._publish(work)
        return self

    def _private_copy(self, continuing):
        """A shallow copy to fit; when training continues, with its own copy of
        the networks, the optimiser (one deepcopy, so that the optimiser still
        points at the copied parameters) and the history."""
        # Not copy.copy: that would go through __getstate__, a numpy round trip
        # of every weight.
        work = object.__new__(type(self))
        work.__dict__.update(
            (name, value)
            for name, value in self.__dict__.items()
            if name not in ("_state_lock", "_numpy_encoder_cache")
        )
        if continuing:
            work.module_, work.optimizer_ = copy.deepcopy(
                (self.module_, self.optimizer_)
            )
            work.history_ = list(self.history_)
        return work

    def _publish(self, work):
        """Replace the fitted state by ``work``'s (None: unfit), in one step."""

        def update():
            self._clear_fitted_state()
            if work is not None:
                # Fitted attributes only: a set_params made meanwhile stays.
                self.__dict__.update(
                    (name, value)
                    for name, value in work.__dict__.items()
                    if _is_fitted_name(name, self._FITTED_PRIVATE)
                )

        state_lock(self).write(update)

    def _continues_training(self, incremental):
        return hasattr(self, "module_") and (incremental or self.warm_start)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, incremental):
        # Decorated here rather than on fit so that parameter validation errors,
        # too, pass through fit's clean-up of the fitted state.
        continuing = self._continues_training(incremental)
        if continuing:
            self._check_same_architecture()
        if is_blocked(X) or sparse.issparse(X):
            self._check_gaussian_only(X, incremental)
        X, library = _as_pandas(X)
        columns, dtypes = (
            (list(X.columns), list(X.dtypes))
            if isinstance(X, pd.DataFrame)
            else (None, None)
        )
        X = self._validate_X(X, reset=not continuing)
        early_stopping = self.early_stopping and not incremental
        rng = _seed_source(self.random_state)
        # Positions of the training and validation rows (None: every row trains):
        # the data layer reads them from X itself, so a float array is not copied.
        train_rows = val_rows = None
        if early_stopping:
            train_rows, val_rows = self._split_validation(X.shape[0], rng)
        n_train = X.shape[0] if train_rows is None else len(train_rows)
        plan = self._plan(n_train, incremental)
        if not continuing:
            self._initialize(
                X, rng, columns, dtypes, incremental, train_rows, plan.batch_size
            )
            # Tables come back in the caller's dataframe library.
            self._frame_library = library
            self._chunk_warmup_epochs = plan.warmup_epochs if incremental else None
        device = self._model_device()
        config = TrainingConfig(
            batch_size=plan.batch_size,
            max_epochs=plan.max_epochs,
            tol=self.tol,
            n_iter_no_change=plan.patience,
            beta=self.beta,
            warmup_epochs=plan.warmup_epochs,
            early_stopping=early_stopping,
            input_noise=self._effective_input_noise(),
            precision=self._checked_precision(device),
            learning_rate=self.learning_rate_init,
            learning_rate_schedule="constant" if incremental else self.learning_rate,
        )
        # A new stream of noise for every call, reproducible from random_state.
        seed = np.random.SeedSequence([self._train_seed, self.n_iter_])
        progress = None
        if self.verbose:
            log_det = self.schema_.mean_log_jacobian()
            progress = ProgressBar(plan, self.n_iter_, offset=log_det)
        rows = TrainingRows.from_table(
            self.schema_, X, device, self.handle_unknown, rows=train_rows
        )
        try:
            history = train(
                self.module_,
                self.optimizer_,
                rows,
                config,
                generator=_make_generator(seed.generate_state(1)[0], device),
                # A rare label that fell only into the validation rows was passed
                # to fit all the same: there it counts as missing, not as an error.
                X_val=(
                    TrainingRows.from_table(
                        self.schema_, X, device, "missing", rows=val_rows
                    )
                    if early_stopping
                    else None
                ),
                first_epoch=self.n_iter_,
                log=progress,
            )
        except NonFiniteLossError as exc:
            advice = (
                f"Try a smaller learning_rate_init (now {self.learning_rate_init}), "
                "check X for extreme values, or use fewer/narrower hidden layers."
            )
            raise NonFiniteLossError(exc.epoch, exc.loss, advice) from None
        finally:
            if progress is not None:
                progress.close()
        if history.stop_reason == "interrupted" and not (continuing or history.records):
            raise KeyboardInterrupt  # nothing trained: let _fit_or_reset unfit it
        self.training_plan_ = {
            "n_rows": plan.n_rows,
            "batch_size": plan.batch_size,
            "max_iter": plan.max_epochs,
            "warmup_epochs": plan.warmup_epochs,
            "max_steps": plan.max_steps,
            "max_samples": plan.max_samples,
            # (a one-epoch partial_fit call never waits)
            "n_iter_no_change": None if incremental else plan.patience,
            "cuda_graphs": history.cuda_graphs,
        }
        self._record(history, config, incremental=incremental)

    def _checked_precision(self, device):
        """``precision``, refused on a GPU for which torch reports no bfloat16
        support (the test torch's autocast makes; it counts emulation)."""
        if (
            self.precision == "bfloat16"
            and device.type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise ValueError(
                "precision='bfloat16' was requested but torch reports no bfloat16 "
                "support on this GPU (torch.cuda.is_bf16_supported() is False). "
                "Use precision='float32'."
            )
        return self.precision

    def _effective_input_noise(self):
        """``input_noise``, or 0 with a warning for a table without Gaussian
        columns (the noise is only ever added to those)."""
        if self.input_noise > 0 and self.module_.n_gaussian_inputs == 0:
            warnings.warn(
                f"input_noise={self.input_noise} has no effect: the table has no "
                "Gaussian (standardised numeric) columns, and the noise is only "
                "added to those.",
                UserWarning,
                stacklevel=4,
            )
            return 0.0
        return self.input_noise

    def _plan(self, n_rows, incremental):
        """The training call's budget; warns when the warm-up outlasts it."""
        plan = plan_budget(
            n_rows,
            self.batch_size,
            1 if incremental else self.max_iter,
            self.warmup_epochs,
            self.n_iter_no_change,
        )
        continuing = self._continues_training(incremental)
        if incremental and self.warmup_epochs == "auto":
            # Over partial_fit calls the warm-up counts on across chunks: it is
            # what a fit on the first chunk's size would plan, kept for the later
            # chunks so that the KL weight only ever grows.
            first = self.__dict__.get("_chunk_warmup_epochs") if continuing else None
            if first is None:
                first = plan_budget(n_rows, self.batch_size).warmup_epochs
            plan.warmup_epochs = first
        epochs_before = self.n_iter_ if continuing else 0
        if not incremental and plan.warmup_epochs >= epochs_before + plan.max_epochs:
            planned = "" if self.max_iter != "auto" else " (planned for these rows)"
            warnings.warn(
                f"warmup_epochs={plan.warmup_epochs:g} >= max_iter="
                f"{plan.max_epochs}{planned}: the KL weight never reaches beta, so "
                "training never optimises the ELBO itself. Lower warmup_epochs or "
                "raise max_iter.",
                UserWarning,
                stacklevel=6,
            )
        return plan

    def _split_validation(self, n_rows, rng):
        """Positions of the training rows and of the held-out validation rows."""
        n_val = int(np.ceil(self.validation_fraction * n_rows))
        if n_val < 1 or n_rows - n_val < 1:
            raise ValueError(
                "early_stopping=True needs at least one training and one validation "
                f"row, but X has {n_rows} rows and validation_fraction="
                f"{self.validation_fraction}. Pass more rows or set "
                "early_stopping=False."
            )
        order = rng.permutation(n_rows)
        return order[n_val:], order[:n_val]

    def _initialize(
        self, X, rng, columns, dtypes, incremental, rows=None, batch_size=128
    ):
        """Build the model, optimiser and standardisation from the training rows
        (the ``rows`` of `X`; None: all of them)."""
        hidden_layer_sizes = self._check_hidden_layer_sizes()
        device = _resolve_device(self.device)
        init_seed, train_seed = rng.randint(_MAX_SEED, size=2)
        schema = build_schema(
            X, self.likelihood, columns, dtypes, constants=not incremental, rows=rows
        )
        # Before anything is allocated: a typo must not exhaust the memory.
        needs = estimate_memory(
            schema.layout(),
            self.n_components,
            hidden_layer_sizes,
            batch_size,
            self.n_importance_samples,
        )
        check_memory(needs, device, self.get_params())
        self.schema_ = schema
        self.mean_, self.scale_ = schema.mean, schema.scale
        self.module_ = build_vae(
            schema.layout(),
            self.n_components,
            hidden_layer_sizes,
            self.activation,
            _make_generator(init_seed, "cpu"),
        ).to(device)
        self.optimizer_ = make_optimizer(self.module_, self.learning_rate_init)
        self._train_seed = int(train_seed)
        self._architecture = self._architecture_params()
        self.n_iter_ = 0
        self.history_ = []
        self._n_features_out = self.n_components

    def _record(self, history, config, incremental):
        """Turn the torch-side history into fitted attributes, in the units of X."""
        log_det = self.schema_.mean_log_jacobian()
        for record in history.records:
            entry = asdict(record)
            entry["rows_per_second"] = record.rows_per_second
            entry["loss"] += log_det
            entry["reconstruction"] += log_det
            if entry["validation_score"] is not None:
                entry["validation_score"] -= log_det
            self.history_.append(entry)
        self.n_iter_ += history.n_epochs
        self.loss_curve_ = [entry["loss"] for entry in self.history_]
        if config.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = [
                e["validation_score"]
                for e in self.history_
                if e["validation_score"] is not None
            ]
            self.best_validation_score_ = (
                history.best_validation_score - log_det
                if history.best_validation_score > -math.inf
                else None
            )
        else:
            self.best_loss_ = min(self.loss_curve_, default=None)
            self.validation_scores_ = None
            self.best_validation_score_ = None
        if history.stop_reason == "interrupted":
            warnings.warn(
                f"Training interrupted by the user after {self.n_iter_} epochs; the "
                "model keeps its current weights (with early_stopping=True, those of "
                "the best epoch).",
                UserWarning,
                stacklevel=6,
            )
        elif (
            history.stop_reason == "max_epochs"
            and not incremental
            and self.max_iter != "auto"
        ):
            warnings.warn(
                f"VAETransformer: maximum iterations ({self.max_iter}) reached and the "
                "optimisation hasn't converged yet. Raise max_iter, or set "
                "early_stopping=True to stop on held-out data.",
                ConvergenceWarning,
                stacklevel=6,
            )

    def _architecture_params(self):
        return {
            "n_components": self.n_components,
            "hidden_layer_sizes": self._check_hidden_layer_sizes(),
            "activation": self.activation,
            "likelihood": self.likelihood,
        }

    def _check_same_architecture(self):
        changed = {
            name: (old, new)
            for (name, old), new in zip(
                self._architecture.items(),
                self._architecture_params().values(),
                strict=True,
            )
            if old != new
        }
        if changed:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(
                f"Cannot continue training a model whose architecture changed "
                f"({details}). Set warm_start=False to train a new model, or restore "
                "the parameters."
            )

    _FITTED_PRIVATE = (
        "_n_features_out",
        "_frame_library",
        "_chunk_warmup_epochs",
        "_train_seed",
        "_architecture",
        "_numpy_encoder_cache",
    )

    def _clear_fitted_state(self):
        for name in list(vars(self)):
            if _is_fitted_name(name, self._FITTED_PRIVATE):
                delattr(self, name)

    def _check_hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a positive int or a sequence of positive "
                f"ints, got {self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in sizes]

    def _validate_X(self, X, reset, inference=False):
        """Check `X`; a DataFrame with non-numeric columns stays a DataFrame.

        ``inference``: `X` is only read through ``encode_rows``, which looks
        for infinities itself where the rows are standardised on a GPU.
        """
        if is_blocked(X):
            return self._validate_blocks(X, reset)
        X, _ = _as_pandas(X)
        if isinstance(X, pd.DataFrame) and X.columns.has_duplicates:
            repeated = list(dict.fromkeys(X.columns[X.columns.duplicated()]))
            raise ValueError(
                f"X has more than one column named {repeated[0]!r} (repeated "
                f"names: {repeated}). Each column must have its own name: rename "
                "or drop the repeats."
            )
        if self._reads_columns(X, reset):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1:
                raise ValueError(
                    f"Found a DataFrame with 0 rows (shape={X.shape}) while a "
                    "minimum of 1 is required."
                )
            if not reset:
                self.schema_.check_columns(X)
            return X
        if not reset:
            self._check_model_reads_numbers()
        if not reset and _plain_float_rows(X):
            # Already a float matrix: the array checks reduce to one for
            # infinities, and with no feature names to compare, validate_data's
            # remaining check is the width, done here directly. (Both calls cost
            # more than encoding a row: the single-row benchmark in speed.py.)
            if hasattr(self, "feature_names_in_"):
                # Fitted on named columns: scikit-learn warns of the missing names.
                validate_data(self, X, reset=False, skip_check_array=True)
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
            if not (inference and self._checks_infinity_on_device(X)) and any(
                # A chunk at a time: no temporary of the whole array's size.
                np.isinf(chunk).any()
                for chunk in row_chunks(X)
            ):
                raise ValueError(INFINITY_MESSAGE)
            return X
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            accept_sparse=("csr", "csc"),
        )
        if sparse.issparse(X) and np.isnan(X.data).any():
            raise ValueError(
                "A sparse X holds NaN entries. Missing values are not supported in "
                "sparse input; pass a dense array with NaN for them, or fill them."
            )
        return X

    def _checks_infinity_on_device(self, X):
        """True when inference rows of the float array `X` travel to a GPU as
        they are and are checked there, batch by batch (``encode_rows``)."""
        return standardises_on_device(self.schema_, X, self._model_device())

    def _validate_blocks(self, X, reset):
        """Check a dask array without computing it: its blocks are checked as
        they are read (infinities by the statistics pass)."""
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D dask array, got {X.ndim} dimension(s) "
                f"(shape={X.shape})."
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
        if not reset:
            self._check_model_reads_numbers()
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if len(X.chunks[1]) > 1:  # a block must hold whole rows
            X = X.rechunk({1: -1})
        validate_data(self, X, reset=reset, skip_check_array=True)
        return X

    def _check_model_reads_numbers(self):
        """Refuse an array for a model fitted on a DataFrame of labels."""
        if not self.schema_.numeric:
            raise ValueError(
                "This VAETransformer was fitted on a DataFrame with non-numeric "
                f"columns ({self.schema_.non_numeric_names()}); pass a DataFrame "
                "with the same columns and dtypes."
            )

    def _check_gaussian_only(self, X, incremental):
        """Refuse, before any work, what a fit on a dask array or a sparse
        matrix cannot do."""
        source = "a sparse matrix" if sparse.issparse(X) else "a dask array"
        # (partial_fit never stops early, whatever the input.)
        if self.early_stopping and not incremental and not sparse.issparse(X):
            raise ValueError(
                "early_stopping=True needs a held-out split of rows in memory, "
                "which a dask array's fit does not make. Set early_stopping=False, "
                "or call score on held-out blocks between partial_fit calls."
            )
        kinds = (
            set(self.likelihood.values())
            if isinstance(self.likelihood, dict)
            else {self.likelihood}
        )
        if not kinds <= {"auto", "gaussian"}:
            raise ValueError(
                f"{source[0].upper()}{source[1:]} is modelled with Gaussian columns "
                f"only (likelihood={self.likelihood!r} was given). Fit on a dense "
                "in-memory array or DataFrame for count, binary or categorical "
                "columns."
            )

    def _map_blocks(self, method, X, width):
        """``method`` over the blocks of the dask array `X`, lazily: a dask
        array of ``width`` columns (None: one value per row)."""
        X = self._validate_X(X, reset=False)
        scoring = method == "score_samples"
        dtype = np.float64 if scoring else X.dtype
        # A frozen view of this model: fits publish new objects and never
        # change the published ones, so blocks computed later, after a fit,
        # still use the model this call saw.
        snapshot = getattr(self._private_copy(continuing=False), method)
        if width is None:
            meta = np.empty((0,), dtype)
            return X.map_blocks(snapshot, dtype=dtype, drop_axis=1, meta=meta)
        return X.map_blocks(
            snapshot,
            dtype=dtype,
            chunks=(X.chunks[0], (width,)),
            meta=np.empty((0, width), dtype),
        )

    def _reads_columns(self, X, reset):
        """True when `X` must be read column by column rather than as one array."""
        if not isinstance(X, pd.DataFrame):
            return False
        if reset:
            return not _numeric_frame(X)
        return not (self.schema_.numeric and _numeric_frame(X))

    # ---------------------------------------------------------------- inference

    def _encoded_batches(self, X, handle_unknown=None):
        """``load(rows)`` for ``map_batches``: rows of `X` encoded on the model's
        device."""
        schema, device = self.schema_, self._model_device()
        handle_unknown = handle_unknown or self.handle_unknown
        return lambda rows: encode_rows(
            schema, take_rows(X, rows), device, handle_unknown
        )

    def _numpy_encoder(self):
        encoder = self.__dict__.get("_numpy_encoder_cache")
        if encoder is None or not encoder.matches():
            encoder = self._numpy_encoder_cache = NumpyMLP(self.module_.encoder.net)
        return encoder

    def _model_device(self):
        # The first layer's weight: cheaper than walking module_.parameters().
        return self.module_.encoder.net[0].weight.device

    @reads_fitted_state
    def transform(self, X, return_std=False):
        """Encode `X` as the means of the posterior q(z|x).

        Deterministic: the same rows always give the same codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.
        return_std : bool, default=False
            Also return the posterior standard deviations: how uncertain the
            model is of each code.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in the dtype of `X` (float32 or float64).
        Z_std : ndarray of shape (n_samples, n_components)
            Posterior standard deviations; only when ``return_std=True``.
        """
        check_is_fitted(self)
        if is_blocked(X):
            if return_std:
                raise ValueError(
                    "return_std=True is not available for a dask array: call "
                    "transform on its blocks (X.map_blocks) instead."
                )
            return self._map_blocks("transform", X, self.n_components)
        X = self._validate_X(X, reset=False, inference=True)
        dtype = (
            X.dtype if isinstance(X, np.ndarray) or sparse.issparse(X) else np.float64
        )
        device = self._model_device()
        if sparse.issparse(X) and X.shape[0] <= _NUMPY_PATH_MAX_ROWS:
            X = X.toarray()  # a few rows: the fast path below
        if (
            X.shape[0] <= _NUMPY_PATH_MAX_ROWS
            and device.type == "cpu"
            and self.module_.encoder.reads_values_as_they_are
        ):
            x = self.schema_.encode(X, self.handle_unknown).targets
            out = self._numpy_encoder()(x)
            _refuse_non_finite(out, "transform")
            mu, log_var = out[:, : self.n_components], out[:, self.n_components :]
            Z = mu.astype(dtype)
            return (Z, np.exp(0.5 * log_var).astype(dtype)) if return_std else Z

        def encode(data):
            mu, log_var = self.module_.encode(data.targets, data.observed)
            return (mu, torch.exp(0.5 * log_var)) if return_std else mu

        results = map_batches(
            encode,
            X.shape[0],
            self._encoded_batches(X),
            inference_batch_rows(self.module_, device, input_width=_dense_width(X)),
        )
        for result in results:
            _refuse_non_finite(result, "transform")
        Z = results[0].astype(dtype, copy=False)
        return (Z, results[1].astype(dtype, copy=False)) if return_std else Z

    @reads_fitted_state
    def inverse_transform(self, X):
        """Decode latent codes into the mean of p(x|z), in the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, for example the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, `n_features_in_`)
            Mean of the decoder's distribution for each code; for label columns
            the most probable level, for integer columns the rounded mean. A
            DataFrame with the training columns and dtypes if the model was
            fitted on one.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32], input_name="X")
        if Z.shape[1] != self.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects latent "
                f"codes with n_components={self.n_components} features. Pass the "
                "output of transform, not the original data."
            )
        return self._decode(Z, draw=None, dtype=Z.dtype)

    def _decode(self, Z, draw, dtype):
        """Decode codes to the mean of p(x|z), or to a draw when given a generator."""
        device = self._model_device()
        likelihood = self.module_.likelihood

        def decode(z):
            params = self.module_.decode(z)
            if draw is None:
                return likelihood.to_values(likelihood.mean(params))
            return likelihood.sample(params, generator=draw)

        (values,) = map_batches(
            decode,
            Z.shape[0],
            lambda rows: torch.as_tensor(Z[rows], dtype=torch.float32).to(device),
            inference_batch_rows(self.module_, device),
        )
        _refuse_non_finite(
            values, "sample" if draw is not None else "inverse_transform"
        )
        return _in_library(
            self.schema_.decode(values, dtype), self.__dict__.get("_frame_library")
        )

    @reads_fitted_state
    def sample(self, n_samples=1, random_state=None):
        """Generate rows: draw z from the prior N(0, I), then x from p(x|z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; an int gives the same rows on every call.

        Returns
        -------
        X_new : ndarray or DataFrame of shape (n_samples, `n_features_in_`)
            Generated rows, in the units of the training data; a DataFrame with
            the training columns and dtypes if the model was fitted on one.
        """
        check_is_fitted(self)
        valid = isinstance(n_samples, Integral) and not isinstance(n_samples, bool)
        if not valid or n_samples < 1:
            raise ValueError(
                f"n_samples must be a positive integer, got {n_samples!r}."
            )
        check_output_fits(n_samples, self.n_components, self.n_features_in_)
        # Separate streams for z and for x given z: one stream for both would make
        # each row's observation noise a copy of its latent draw.
        z_seed, x_seed = _seed_source(random_state).randint(_MAX_SEED, size=2)
        Z = torch.randn(
            (n_samples, self.n_components), generator=_make_generator(z_seed, "cpu")
        ).numpy()
        draw = _make_generator(x_seed, self._model_device())
        return self._decode(Z, draw=draw, dtype=np.float64)

    @reads_fitted_state
    def score_samples(self, X):
        """Importance-weighted lower bound of log p(x) for each row, in nats.

        With K = ``n_importance_samples`` draws z_k ~ q(z|x), the bound is
        ``log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)`` (the IWAE bound). In
        expectation it lies between the ELBO and the true log-likelihood
        log p(x), and it tightens as K grows; K = 1 gives a one-draw ELBO. It is
        in the units of `X` (the standardisation's Jacobian is accounted for),
        so it compares with :meth:`sklearn.decomposition.PCA.score_samples`.
        Higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Lower bound of the log-likelihood of each row.
        """
        check_is_fitted(self)
        if is_blocked(X):
            return self._map_blocks("score_samples", X, None)
        X = self._validate_X(X, reset=False, inference=True)
        # In the caller's units: the standardisation's Jacobian, over the
        # Gaussian entries each row has.
        log_det = self.schema_.log_jacobian()
        log_scale = torch.as_tensor(
            np.log(self.schema_.scale[self.schema_.order]), device=self._model_device()
        )

        def score(data):
            bound = importance_weighted_bound(self.module_, data, noise).double()
            if data.observed is None:
                return bound - log_det
            return bound - data.observed.double() @ log_scale

        noise = self._importance_noise()
        (scores,) = self._importance_map(score, X)
        _refuse_non_finite(scores, "score_samples")
        return scores

    def _importance_noise(self):
        """The ``n_importance_samples`` draws of the importance-sampled methods:
        the same for every row and every call (common random numbers)."""
        return fixed_noise(
            (self.n_importance_samples, 1, self.n_components), self._model_device()
        )

    def _importance_map(self, fn, X):
        """``map_batches`` for the importance-sampled methods, which decode each
        row once per draw: their batches shrink as the draws grow."""
        return map_batches(
            fn,
            X.shape[0],
            self._encoded_batches(X),
            inference_batch_rows(
                self.module_,
                self._model_device(),
                self.n_importance_samples,
                input_width=_dense_width(X),
            ),
        )

    def score(self, X, y=None):
        """Mean log-likelihood bound of the rows of `X`, in nats; higher is better.

        Used by :class:`sklearn.model_selection.GridSearchCV` when no scorer is
        given, so model selection by held-out likelihood needs no custom code.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    @reads_fitted_state
    def impute(self, X):
        """Fill the missing entries of `X` with the model's prediction of them.

        Each row's missing entries get their expectation given the row's observed
        entries, E[x_missing | x_observed]: the decoder's means at draws of z from
        q(z|x), weighted by how well each draw explains the observed entries
        (self-normalised importance sampling with ``n_importance_samples``
        draws, the same every call). Categorical and two-label columns get their
        most probable level, integer columns a rounded value. Observed entries
        are returned unchanged. :class:`skvae.VAEImputer` wraps this method for
        pipelines.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries (NaN, None or ``pd.NA``).

        Returns
        -------
        X_filled : ndarray or DataFrame of shape (n_samples, n_features)
            `X` with its holes filled: a DataFrame with the training columns and
            dtypes if the model was fitted on one, else an array.
        """
        check_is_fitted(self)
        X, _ = _as_pandas(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        X = self._validate_X(X, reset=False, inference=True)
        if sparse.issparse(X):  # no NaN, so nothing to fill
            return X.copy()
        noise = self._importance_noise()
        (values,) = self._importance_map(
            lambda data: conditional_mean(self.module_, data, noise), X
        )
        _refuse_non_finite(values, "impute")
        dtype = X.dtype if isinstance(X, np.ndarray) else np.float64
        filled = self.schema_.fill(X, self.schema_.decode(values, dtype), index)
        return _in_library(filled, self.__dict__.get("_frame_library"))

    # ---------------------------------------------------------------- shipping

    @reads_fitted_state
    def to_onnx(self, path=None, *, method="transform", dtype=np.float32):
        """Write :meth:`transform` (or :meth:`inverse_transform`) as an ONNX model.

        The graph holds everything between the caller's table and the result:
        the column order, the standardisation, the label lookups, the encoder's
        (or decoder's) weights. onnxruntime runs it without Python or torch,
        and reproduces the method to about 1e-5. Needs the ``onnx`` package
        (``pip install skvae[onnx]``).

        Inputs: a table of numbers (an array, or a DataFrame of numeric
        columns) is one tensor ``X`` of shape (n, `n_features_in_`), in the
        training column order. A table with label columns (strings,
        categories, booleans) is one input per column, named after it, of shape
        (n, 1): ``dtype`` for a number column, a string tensor holding
        ``str(level)`` for a label column. NaN, and labels unseen in training,
        are read as missing: the graph behaves as ``handle_unknown="missing"``.
        The transform graph outputs ``Z`` of shape (n, `n_components`).

        The inverse_transform graph reads ``Z`` and outputs the table the same
        way: one tensor ``X``, or one output per column (label columns as
        strings). Integer columns of a DataFrame are rounded, as
        :meth:`inverse_transform` rounds them.

        To convert a whole Pipeline holding a VAETransformer with ``skl2onnx``,
        call :func:`skvae.register_skl2onnx_converter` first.

        Parameters
        ----------
        path : str or path-like, default=None
            Where to write the model; None writes nothing.
        method : {"transform", "inverse_transform"}, default="transform"
            The method the graph computes.
        dtype : {numpy.float32, numpy.float64}, default=numpy.float32
            Element type of the graph's number inputs and outputs. float64
            input is standardised in float64, as :meth:`transform` does.

        Returns
        -------
        model : onnx.ModelProto
            The checked model, also written to `path` when given.

        Examples
        --------
        >>> import numpy as np
        >>> from skvae import VAETransformer
        >>> X = np.random.RandomState(0).normal(size=(100, 5))
        >>> vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
        >>> model = vae.fit(X).to_onnx()
        >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
        (['X'], ['Z'])
        """
        check_is_fitted(self)
        if method not in ("transform", "inverse_transform"):
            raise ValueError(
                f"method must be 'transform' or 'inverse_transform', got {method!r}."
            )
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or float64, got {dtype!r}.")
        try:
            import onnx
        except ImportError as error:
            raise ImportError(
                "to_onnx needs the onnx package: pip install skvae[onnx]"
            ) from error
        model = onnx_export(self.module_, self.schema_, method, np.dtype(dtype))
        if path is not None:
            onnx.save(model, path)
        return model

    # --------------------------------------------------- scikit-learn plumbing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.sparse = True
        return tags

    def __sklearn_is_fitted__(self):
        # check_is_fitted's default scans every attribute's name, which costs
        # about as much as encoding a row; every fitted state has a module_.
        return hasattr(self, "module_")

    def __getstate__(self):
        """The fitted state as numpy arrays and plain Python values.

        No torch object is stored: the networks' weights and the optimiser's
        state travel as numpy arrays, the column dtypes as plain values, so a
        saved model loads anywhere (a GPU-trained one on the CPU), and
        ``skops.io`` can load it without trusting any type but skvae's own.
        """
        # A copy: object.__getstate__ hands back the instance's own __dict__;
        # taken under the read lock, so never between a fit's publishing steps.
        lock = state_lock(self)
        lock.acquire_read()
        try:
            state = dict(super().__getstate__())
        finally:
            lock.release_read()
        state.pop("_numpy_encoder_cache", None)  # views of this process's tensors
        state.pop("_state_lock", None)  # a lock of this process
        module = state.pop("module_", None)
        if module is None:
            return state
        state["_skvae_format"] = _STATE_FORMAT
        state["module_"] = _map_tree(module.state_dict(), torch.Tensor, _to_numpy)
        state["optimizer_"] = _map_tree(
            state["optimizer_"].state_dict(), torch.Tensor, _to_numpy
        )
        state["schema_"] = with_dtypes(self.schema_, portable_dtype)
        return state

    def __setstate__(self, state):
        # Parameters added since a model was saved take their defaults.
        state = {**_ADDED_PARAMETERS, **state}
        format_ = state.get("_skvae_format")
        if format_ is not None:
            if format_ > _STATE_FORMAT:
                raise ValueError(
                    f"This model was saved by a newer skvae (state format {format_}); "
                    f"this version reads formats up to {_STATE_FORMAT}. Upgrade "
                    "skvae to load it."
                )
            try:
                state = dict(state)
                del state["_skvae_format"]
                state["schema_"] = with_dtypes(state["schema_"], dtype_from_portable)
                weights, optimizer = state.pop("module_"), state.pop("optimizer_")
                super().__setstate__(state)
                self._restore_module(weights, optimizer)
            except Exception as error:  # noqa: BLE001 - whatever was altered
                raise ValueError(
                    "This saved VAETransformer is damaged or was altered: its state "
                    f"does not rebuild a model ({type(error).__name__}: {error}). "
                    "Load an intact copy, or fit the model again."
                ) from error
            return
        super().__setstate__(state)

    def _restore_module(self, weights, optimizer_state):
        """Rebuild the networks and the optimiser from their saved arrays."""
        module = build_vae(
            self.schema_.layout(),
            self._architecture["n_components"],
            self._architecture["hidden_layer_sizes"],
            self._architecture["activation"],
            _make_generator(0, "cpu"),  # its draws are overwritten just below
        )
        tensors = _map_tree(weights, np.ndarray, torch.from_numpy)
        if not all(
            torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()
        ):
            raise ValueError("some weights are NaN or infinite")
        module.load_state_dict(tensors)
        module.eval()
        # On the device the parameter asks for, as after fit; the Adam state
        # follows the parameters in load_state_dict below.
        self.module_ = module = module.to(_loading_device(self.device))
        self.optimizer_ = make_optimizer(module, self.learning_rate_init)
        self.optimizer_.load_state_dict(
            _map_tree(optimizer_state, np.ndarray, torch.from_numpy)
        )
