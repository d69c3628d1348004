"""The table model: the fitted VAE of one table, as one object.

``TableModel`` holds what a fit learns: the schema (which likelihood each column
gets, the standardisation, the levels of label columns), the networks, the
optimiser and the training state. It does the model's work: train on rows for
a plan, encode, decode, draw, score, impute, export its state as numpy arrays
and load it back. It knows no scikit-learn: the estimator
(``skvae._estimator``) checks the caller's table, makes one call here and wraps
the answer. A distributed worker trains this object, an exporter reads it, and
a new prior or objective extends it.

Below it: the schema (``_schema``: table <-> model layout), the data layer
(``_data``: validated rows -> device batches), the networks (``_networks``), the
likelihoods (``_likelihoods``) and the training loop (``_training``).
"""

import copy
import math
import sys
import warnings
from dataclasses import asdict, dataclass
from numbers import Integral

import numpy as np
import torch
from scipy import sparse

from ._conditional import meet_conditions, resample_codes
from ._data import (
    DeviceMemoryError,
    OutOfMemoryError,
    TrainingRows,
    encode_rows,
    inference_batch_rows,
    map_batches,
    standardises_on_device,
    take_rows,
)
from ._mixture import GaussianMixture, fit_mixture
from ._networks import ACTIVATIONS, NumpyMLP, build_vae
from ._onnx import export as onnx_export
from ._placement import MapReference, place, reference_rows
from ._progress import ProgressBar
from ._resources import check_fits as check_memory
from ._resources import check_output_fits
from ._schema import (
    build_schema,
    dtype_from_portable,
    is_blocked,
    portable_dtype,
    with_dtypes,
)
from ._training import (
    Neighbors,
    NonFiniteLossError,
    TrainingConfig,
    conditional_mean,
    fixed_noise,
    importance_weighted_bound,
    make_optimizer,
    plan_budget,
    train,
    weights_are_finite,
)

__all__ = [
    "ACTIVATIONS",
    "MAX_SEED",
    "DeviceMemoryError",
    "FitSettings",
    "TableModel",
    "fit_model",
]

MAX_SEED = np.iinfo(np.int32).max

# The latent density that ``draw`` samples from: a mixture of Gaussians, fitted
# at the end of each training call to one draw of z ~ q(z|x) for each of up to
# MIXTURE_ROWS training rows (a random subset beyond). MIXTURE_COMPONENTS of
# them, one per MIXTURE_ROWS_PER_COMPONENT training rows on larger tables, at
# most MAX_MIXTURE_COMPONENTS: on Adult (32,561 rows) 30 rather than 10 raised
# the detection score of sample's rows from 0.710 to 0.726, on diamonds
# (26,970, beta 0.01, rows at the mean) from 0.425 to 0.453, for 1-3 s of EM.
MIXTURE_COMPONENTS = 10
MIXTURE_ROWS_PER_COMPONENT = 1000
MAX_MIXTURE_COMPONENTS = 30
MIXTURE_ROWS = 10_000


def mixture_components(n_rows):
    """Components of the sampling mixture of a training call on ``n_rows``."""
    per_rows = n_rows // MIXTURE_ROWS_PER_COMPONENT
    return int(min(max(MIXTURE_COMPONENTS, per_rows), MAX_MIXTURE_COMPONENTS))


# Up to this many rows are encoded on the CPU with numpy rather than torch: for
# a few rows torch's per-operation overhead dominates (see NumpyMLP).
NUMPY_PATH_MAX_ROWS = 16


@dataclass(frozen=True)
class FitSettings:
    """What a training call asks for: the estimator's parameters as given
    (see ``VAETransformer`` for their meaning), less the seeding."""

    n_components: int
    hidden_layer_sizes: object
    activation: str
    likelihood: object
    beta: float
    batch_size: object
    learning_rate: str
    learning_rate_init: float
    max_iter: object
    tol: float
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: object
    warmup_epochs: object
    input_noise: float
    neighbor_weight: float
    perplexity: float
    placement: str
    precision: str
    n_importance_samples: int
    verbose: int
    device: str
    handle_unknown: str

    @classmethod
    def from_params(cls, params):
        """The settings among ``params`` (an estimator's ``get_params()``)."""
        return cls(**{name: params[name] for name in cls.__dataclass_fields__})

    @property
    def hidden_widths(self):
        """``hidden_layer_sizes`` as a list of ints (the estimator checked it)."""
        sizes = self.hidden_layer_sizes
        return [int(s) for s in ([sizes] if isinstance(sizes, Integral) else sizes)]

    def architecture(self):
        """What shapes the networks: a model that continues training keeps it."""
        return {
            "n_components": self.n_components,
            "hidden_layer_sizes": self.hidden_widths,
            "activation": self.activation,
            "likelihood": self.likelihood,
        }


@dataclass
class FitOutcome:
    """What one training call did, in the units of the caller's table."""

    records: list  # one dict per epoch (see VAETransformer.history_)
    stop_reason: str  # "max_epochs", "plateau", "converged" or "interrupted"
    best_validation_score: float | None  # None without a validation split
    training_plan: dict  # the call's budget, "auto" values resolved

    @property
    def interrupted(self):
        return self.stop_reason == "interrupted"


def _in_skvae(frame):
    """Whether ``frame`` runs skvae's code: its own, or scikit-learn's
    ``_fit_context`` wrapper around the estimator's fit."""
    module = frame.f_globals.get("__name__", "")
    if module == "sklearn.base":
        return frame.f_code.co_name == "wrapper"
    return module.startswith("skvae.")


def warn_caller(message, category=UserWarning):
    """Warn at the line that called into skvae (its first frame outside)."""
    frame, level = sys._getframe(1), 2  # 1 would be this function
    while frame is not None and _in_skvae(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def resolve_device(device):
    """The torch device of the ``device`` parameter ("auto": CUDA if any)."""
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
        warn_caller(
            "This model was saved with device='cuda' but no CUDA device is "
            "available here: it is loaded on the CPU. Set device='cpu' (or "
            "'auto') before fitting it again."
        )
        return torch.device("cpu")
    return resolve_device(device)


def checked_precision(precision, device):
    """``precision``, refused on a GPU for which torch reports no bfloat16
    support (the test torch's autocast makes; it counts emulation)."""
    if (
        precision == "bfloat16"
        and device.type == "cuda"
        and not torch.cuda.is_bf16_supported()
    ):
        raise ValueError(
            "precision='bfloat16' was requested but torch reports no bfloat16 "
            "support on this GPU (torch.cuda.is_bf16_supported() is False). "
            "Use precision='float32'."
        )
    return precision


def make_generator(seed, device):
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _non_finite_rows(values):
    """Positions of the rows of ``values`` holding NaN or an infinity."""
    finite = np.isfinite(values)
    if finite.all():
        return None
    return np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))


# A row whose entry lies this many standard deviations (or, for other columns,
# units) from the training data is taken for the cause of a non-finite answer.
FAR_OUTSIDE = 1e3


def _dense_width(X):
    """Columns a sparse `X` has once a batch of it is densified (0 otherwise)."""
    return X.shape[1] if sparse.issparse(X) else 0


class _NormalScoreJacobian:
    """log g'(x) per row, summed over the observed ``"quantile"`` entries: the
    change of variables from a column's normal scores g(x), which the
    Gaussian scores, to its values (see ``skvae._marginals``). Read from the
    scores themselves, so that it runs on the batches as they are encoded."""

    def __init__(self, schema, device):
        self.columns = [
            (
                k,
                torch.as_tensor(marginal.scores, dtype=torch.float32, device=device),
                torch.as_tensor(marginal.log_slopes, device=device),
            )
            for k, marginal in schema.normal_score_columns()
        ]

    def __call__(self, data):
        total = 0.0
        for k, scores, log_slopes in self.columns:
            value = data.targets[:, k].contiguous()
            segment = torch.searchsorted(scores, value, right=True) - 1
            entry = log_slopes[segment.clamp(0, len(log_slopes) - 1)]
            if data.observed is not None:
                entry = entry * data.observed[:, k].double()
            total = total + entry
        return total


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


class TableModel:
    """The VAE of one table: schema, networks, optimiser and training state.

    Its methods read tables the estimator has validated (a float array, a
    sparse matrix, or a DataFrame the schema reads column by column) and
    answer in numpy, or through the schema in the table's own columns.

    Parameters
    ----------
    schema : TableSchema
        How the table's columns map to the model's layout.
    module : VAE
        The networks and the likelihood (``skvae._networks``).
    optimizer : torch.optim.Optimizer
        Adam over ``module``'s parameters, with its state.
    architecture : dict
        The settings that shaped the networks (``FitSettings.architecture``).
    train_seed : int
        Seeds each training call's stream of noise, with ``epochs``.
    epochs : int, default=0
        Epochs trained so far, over all calls.
    chunk_warmup_epochs : float or None, default=None
        The KL warm-up planned by the first ``partial_fit`` chunk, kept for the
        later chunks; None for a model made by ``fit``.
    mixture : GaussianMixture or None, default=None
        The density of the training rows' codes that ``draw`` samples from
        (``skvae._mixture``); None before training, and for models saved
        before it existed, which draw from the prior N(0, I).
    """

    def __init__(
        self,
        schema,
        module,
        optimizer,
        architecture,
        train_seed,
        epochs=0,
        chunk_warmup_epochs=None,
        mixture=None,
        reference=None,
    ):
        self.schema = schema
        self.module = module
        self.optimizer = optimizer
        self.architecture = architecture
        self.train_seed = train_seed
        self.epochs = epochs
        self.chunk_warmup_epochs = chunk_warmup_epochs
        self.mixture = mixture
        self.reference = reference
        self._numpy_encoder = None

    @classmethod
    def build(cls, X, settings, seeds, *, columns, dtypes, incremental, rows, plan):
        """A new, untrained model for the ``rows`` of `X` (None: all of them)."""
        device = resolve_device(settings.device)
        init_seed, train_seed = seeds
        schema = build_schema(
            X,
            settings.likelihood,
            columns,
            dtypes,
            constants=not incremental,
            rows=rows,
        )
        # Before anything is allocated: a typo must not exhaust the memory.
        check_memory(
            schema.layout(),
            settings.n_components,
            settings.hidden_widths,
            plan.batch_size,
            settings.n_importance_samples,
            device,
        )
        module = build_vae(
            schema.layout(),
            settings.n_components,
            settings.hidden_widths,
            settings.activation,
            make_generator(init_seed, "cpu"),
        ).to(device)
        return cls(
            schema,
            module,
            make_optimizer(module, settings.learning_rate_init),
            settings.architecture(),
            int(train_seed),
            chunk_warmup_epochs=plan.warmup_epochs if incremental else None,
        )

    def copy(self):
        """A model with its own networks, optimiser (one deepcopy, so that the
        optimiser points at the copied parameters) and training state."""
        module, optimizer = copy.deepcopy((self.module, self.optimizer))
        return type(self)(
            self.schema,  # never changed after it is built
            module,
            optimizer,
            self.architecture,
            self.train_seed,
            self.epochs,
            self.chunk_warmup_epochs,
            self.mixture,  # never changed: a training call fits a new one
            self.reference,  # likewise
        )

    @property
    def device(self):
        # The first layer's weight: cheaper than walking module.parameters().
        return self.module.encoder.net[0].weight.device

    @property
    def n_components(self):
        return self.architecture["n_components"]

    # ------------------------------------------------------------ training

    def train(self, X, settings, plan, *, incremental, train_rows=None, val_rows=None):
        """Train on the ``train_rows`` of `X` (None: all) for ``plan``; with
        ``val_rows``, stop early on their ELBO. Returns a ``FitOutcome``."""
        device = self.device
        early_stopping = val_rows is not None
        config = TrainingConfig(
            batch_size=plan.batch_size,
            max_epochs=plan.max_epochs,
            tol=settings.tol,
            n_iter_no_change=plan.patience,
            beta=settings.beta,
            warmup_epochs=plan.warmup_epochs,
            early_stopping=early_stopping,
            input_noise=self._effective_input_noise(settings.input_noise),
            neighbors=Neighbors(settings.neighbor_weight, settings.perplexity)
            if settings.neighbor_weight > 0
            else None,
            precision=checked_precision(settings.precision, device),
            min_epochs=plan.min_epochs,
            learning_rate=settings.learning_rate_init,
            learning_rate_schedule="constant"
            if incremental
            else settings.learning_rate,
        )
        # A new stream of noise for every call, reproducible from the seed.
        seed = np.random.SeedSequence([self.train_seed, self.epochs])
        log_det = self.schema.mean_log_jacobian()
        progress = (
            ProgressBar(plan, self.epochs, offset=log_det) if settings.verbose else None
        )
        rows = TrainingRows.from_table(
            self.schema, X, device, settings.handle_unknown, rows=train_rows
        )
        try:
            history = train(
                self.module,
                self.optimizer,
                rows,
                config,
                generator=make_generator(seed.generate_state(1)[0], device),
                # A rare label that fell only into the validation rows was passed
                # to fit all the same: there it counts as missing, not as an error.
                X_val=(
                    TrainingRows.from_table(
                        self.schema, X, device, "missing", rows=val_rows
                    )
                    if early_stopping
                    else None
                ),
                first_epoch=self.epochs,
                log=progress,
            )
        except NonFiniteLossError as exc:
            advice = (
                f"Try a smaller learning_rate_init (now {settings.learning_rate_init}"
                "), check X for extreme values, or use fewer/narrower hidden layers."
            )
            if settings.input_noise > 0:
                advice += f" Or a smaller input_noise (now {settings.input_noise})."
            raise NonFiniteLossError(exc.epoch, exc.loss, advice, exc.weights) from None
        finally:
            if progress is not None:
                progress.close()
        self.epochs += history.n_epochs
        return self._outcome(history, plan, incremental, log_det)

    @staticmethod
    def _outcome(history, plan, incremental, log_det):
        """``history`` in the units of the caller's table (the standardisation's
        Jacobian added back), with the plan that ran."""
        records = []
        for record in history.records:
            entry = asdict(record)
            entry["rows_per_second"] = record.rows_per_second
            entry["loss"] += log_det
            entry["reconstruction"] += log_det
            if entry["validation_score"] is not None:
                entry["validation_score"] -= log_det
            records.append(entry)
        best = history.best_validation_score
        return FitOutcome(
            records=records,
            stop_reason=history.stop_reason,
            best_validation_score=best - log_det if best > -np.inf else None,
            training_plan={
                "n_rows": plan.n_rows,
                "batch_size": plan.batch_size,
                "max_iter": plan.max_epochs,
                # The size rule's epochs, which an automatic plan runs at least
                # (None: a fixed plan of max_iter).
                "min_iter": plan.min_epochs,
                "warmup_epochs": plan.warmup_epochs,
                "max_steps": plan.max_steps,
                "max_samples": plan.max_samples,
                # (a one-epoch partial_fit call never waits)
                "n_iter_no_change": None if incremental else plan.patience,
                "cuda_graphs": history.cuda_graphs,
            },
        )

    def _effective_input_noise(self, input_noise):
        """``input_noise``, or 0 with a warning for a table without Gaussian
        columns (the noise is only ever added to those)."""
        if input_noise > 0 and self.module.n_gaussian_inputs == 0:
            warn_caller(
                f"input_noise={input_noise} has no effect: the table has no "
                "Gaussian (standardised numeric) columns, and the noise is only "
                "added to those."
            )
            return 0.0
        return input_noise

    # ----------------------------------------------------------- inference

    def checks_infinity_on_device(self, X):
        """True when inference rows of the float array `X` travel to a GPU as
        they are and are checked there, batch by batch (``encode_rows``)."""
        return standardises_on_device(self.schema, X, self.device)

    def encode(self, X, handle_unknown, return_std=False, placement=None):
        """The posterior means of the rows of `X` (and their standard
        deviations), in the dtype of `X` (float64 for a DataFrame); with
        ``placement`` (the perplexity of ``placement="neighbors"``), the means
        placed against the training codes instead (``skvae._placement``)."""
        dtype = (
            X.dtype if isinstance(X, np.ndarray) or sparse.issparse(X) else np.float64
        )
        if sparse.issparse(X) and X.shape[0] <= NUMPY_PATH_MAX_ROWS:
            X = X.toarray()  # a few rows: the numpy path below
        if placement is not None:
            results = self._place(X, handle_unknown, return_std, placement)
        elif (
            X.shape[0] <= NUMPY_PATH_MAX_ROWS
            and self.device.type == "cpu"
            and self.module.encoder.reads_values_as_they_are
        ):
            results = self._encode_in_numpy(X, handle_unknown, return_std)
        else:
            results = self._encode_in_torch(X, handle_unknown, return_std)
        for result in results:
            self._refuse_non_finite(result, "transform", X)
        results = [result.astype(dtype, copy=False) for result in results]
        return tuple(results) if return_std else results[0]

    def _encode_in_numpy(self, X, handle_unknown, return_std):
        x = self.schema.encode(X, handle_unknown).targets
        encoder = self._numpy_encoder
        if encoder is None or not encoder.matches():
            encoder = self._numpy_encoder = NumpyMLP(self.module.encoder.net)
        out = encoder(x)
        mu, log_var = out[:, : self.n_components], out[:, self.n_components :]
        return [mu, np.exp(0.5 * log_var)] if return_std else [mu]

    def _encode_in_torch(self, X, handle_unknown, return_std):
        def encode(data):
            mu, log_var = self.module.encode(data.targets, data.observed)
            return (mu, torch.exp(0.5 * log_var)) if return_std else mu

        return map_batches(
            encode,
            X.shape[0],
            self._batches_of(X, handle_unknown),
            inference_batch_rows(self.module, self.device, input_width=_dense_width(X)),
        )

    def _place(self, X, handle_unknown, return_std, perplexity):
        device = self.device
        reference = (
            torch.from_numpy(self.reference.inputs).to(device),
            torch.from_numpy(self.reference.codes).to(device),
        )

        encoder = self.module.encoder

        def encode(data):
            inputs = encoder.read(data.targets, data.observed)
            mu, log_var = encoder.from_read(inputs)
            codes = place(inputs, mu, reference, perplexity)
            return (codes, torch.exp(0.5 * log_var)) if return_std else codes

        return map_batches(
            encode,
            X.shape[0],
            self._batches_of(X, handle_unknown),
            inference_batch_rows(self.module, device, input_width=_dense_width(X)),
        )

    def fit_reference(self, X, rows=None):
        """Keep (up to ``reference_rows`` of) the ``rows`` of `X` (None: all),
        as the encoder reads them, with their codes: what
        ``placement="neighbors"`` places new rows against."""
        seed = np.random.SeedSequence([self.train_seed, self.epochs, 2])
        rng = np.random.RandomState(seed.generate_state(1)[0])
        n_rows = X.shape[0] if rows is None else len(rows)
        width = self.module.encoder.net[0].in_features
        part = _sample_rows(X, rows, rng, reference_rows(n_rows, width))
        encoder = self.module.encoder

        def read_and_encode(data):
            inputs = encoder.read(data.targets, data.observed)
            return inputs.float(), encoder.from_read(inputs)[0]

        inputs, codes = map_batches(
            read_and_encode,
            part.shape[0],
            self._batches_of(part, "missing"),
            inference_batch_rows(self.module, self.device),
        )
        keep = np.isfinite(codes).all(axis=1) & np.isfinite(inputs).all(axis=1)
        # Shuffled: placement normalises over the first rows, a random sample.
        order = rng.permutation(np.flatnonzero(keep))
        self.reference = MapReference(inputs[order], codes[order])

    def decode(self, Z, dtype):
        """The mean of p(x|z) for each code of `Z`, in the table's columns."""
        return self._decode(Z, draw=None, dtype=dtype)

    def draw(self, n_samples, z_seed, x_seed, from_mixture=True, noise=True):
        """``n_samples`` new rows: z from the fitted mixture (``from_mixture``,
        when the model has one) or from the prior N(0, I), then x from p(x|z).

        Separate seeds for z and for x given z: one stream for both would make
        each row's observation noise a copy of its latent draw.
        """
        check_output_fits(n_samples, self.n_components, self.schema.n_columns)
        if from_mixture and self.mixture is not None:
            Z = self.mixture.sample(n_samples, z_seed)
        else:
            Z = torch.randn(
                (n_samples, self.n_components),
                generator=make_generator(z_seed, "cpu"),
            ).numpy()
        draw = make_generator(x_seed, self.device) if noise else None
        return self._decode(Z, draw=draw, dtype=np.float64)

    def draw_given(self, n_samples, conditions, seeds, from_mixture, noise):
        """``n_samples`` rows that meet ``conditions`` (``TableSchema.conditions``),
        the effective sample size of their codes and the condition's log
        probability (``skvae._conditional``); ``seeds``: of the codes and of x
        given z."""
        check_output_fits(n_samples, self.n_components, self.schema.n_columns)
        z_draws = make_generator(seeds[0], self.device)
        with torch.no_grad():
            z, ess, log_probability = resample_codes(
                self.module,
                self._sampling_density(from_mixture),
                conditions,
                self.schema.n_columns,
                n_samples,
                z_draws,
            )
            if z is None:
                return None, ess, log_probability
            x_draws = make_generator(seeds[1], self.device)
            likelihood = self.module.likelihood
            params = self.module.decode(z)
            values = (
                likelihood.sample(params, generator=x_draws)
                if noise
                else likelihood.to_values(likelihood.mean(params))
            )
            values = meet_conditions(
                self.module, values, params, conditions, noise, x_draws
            )
        values = values.cpu().numpy()
        self._refuse_non_finite(values, "sample", codes=z.cpu().numpy())
        table = self.schema.decode(values, np.float64)
        for condition in conditions:
            table = condition.clip(table)
        return table, ess, log_probability

    def _sampling_density(self, from_mixture):
        """(draw, log-density) of the codes ``draw`` samples, in torch."""
        device, d = self.device, self.n_components
        if from_mixture and self.mixture is not None:
            mixture = self.mixture

            def draw(n, generator):
                seed = int(
                    torch.randint(
                        MAX_SEED, (1,), generator=generator, device=generator.device
                    )
                )
                return torch.as_tensor(mixture.sample(n, seed), device=device)

            def log_prob(z):
                return torch.as_tensor(mixture.log_prob(z.cpu().numpy()), device=device)

            return draw, log_prob

        def draw_prior(n, generator):
            return torch.randn((n, d), generator=generator, device=device)

        def log_prior(z):
            return -0.5 * (math.log(2 * math.pi) + z.double() ** 2).sum(dim=1)

        return draw_prior, log_prior

    def fit_mixture(self, X, rows=None):
        """Fit the latent density that ``draw`` samples from to one draw of
        z ~ q(z|x) for (up to ``MIXTURE_ROWS`` of) the ``rows`` of `X`."""
        seed = np.random.SeedSequence([self.train_seed, self.epochs, 1])
        rng = np.random.RandomState(seed.generate_state(1)[0])
        n_rows = X.shape[0] if rows is None else len(rows)
        part = _sample_rows(X, rows, rng, MIXTURE_ROWS)
        mu, std = self._encode_in_torch(part, "missing", True)
        codes = mu + std * rng.standard_normal(mu.shape).astype(np.float32)
        codes = codes[np.isfinite(codes).all(axis=1)]  # rows far out: left aside
        if not len(codes):
            self.mixture = None
            return
        self.mixture = fit_mixture(
            codes, mixture_components(n_rows), rng.randint(MAX_SEED)
        )

    def _decode(self, Z, draw, dtype):
        """Decode codes to the mean of p(x|z), or to a draw when given a generator."""
        device = self.device
        likelihood = self.module.likelihood

        def decode(z):
            params = self.module.decode(z)
            if draw is None:
                return likelihood.to_values(likelihood.mean(params))
            return likelihood.sample(params, generator=draw)

        (values,) = map_batches(
            decode,
            Z.shape[0],
            lambda rows: torch.as_tensor(Z[rows], dtype=torch.float32).to(device),
            inference_batch_rows(self.module, device),
        )
        method = "sample" if draw is not None else "inverse_transform"
        self._refuse_non_finite(values, method, codes=Z)
        return self.schema.decode(values, dtype)

    def score(self, X, n_draws, handle_unknown):
        """The importance-weighted lower bound of log p(x) of each row of `X`,
        with ``n_draws`` draws of z, in the units of `X`."""
        # In the caller's units: the standardisation's Jacobian, over the
        # Gaussian entries each row has.
        log_det = self.schema.log_jacobian()
        log_scale = torch.as_tensor(
            np.log(self.schema.scale[self.schema.order]), device=self.device
        )
        noise = self._importance_noise(n_draws)
        normal_scores = _NormalScoreJacobian(self.schema, self.device)

        def score(data):
            bound = importance_weighted_bound(self.module, data, noise).double()
            bound = bound + normal_scores(data)
            if data.observed is None:
                return bound - log_det
            return bound - data.observed.double() @ log_scale

        (scores,) = self._importance_map(score, X, n_draws, handle_unknown)
        self._refuse_non_finite(scores, "score_samples", X)
        return scores

    def impute(self, X, frame, n_draws, handle_unknown):
        """`X` with each missing entry replaced by its expectation given the
        row's observed entries; ``frame``: the caller's DataFrame that `X` was
        read from (None for an array), whose observed entries and index stay."""
        if sparse.issparse(X):  # no NaN, so nothing to fill
            return X.copy()
        noise = self._importance_noise(n_draws)
        (values,) = self._importance_map(
            lambda data: conditional_mean(self.module, data, noise),
            X,
            n_draws,
            handle_unknown,
        )
        self._refuse_non_finite(values, "impute", X)
        dtype = X.dtype if isinstance(X, np.ndarray) else np.float64
        return self.schema.fill(X, self.schema.decode(values, dtype), frame)

    def _batches_of(self, X, handle_unknown):
        """``load(rows)`` for ``map_batches``: rows of `X` encoded on the model's
        device."""
        schema, device = self.schema, self.device
        return lambda rows: encode_rows(
            schema, take_rows(X, rows), device, handle_unknown
        )

    def _importance_noise(self, n_draws):
        """The draws of the importance-sampled methods: the same for every row
        and every call (common random numbers)."""
        return fixed_noise((n_draws, 1, self.n_components), self.device)

    def _importance_map(self, fn, X, n_draws, handle_unknown):
        """``map_batches`` for the importance-sampled methods, which decode each
        row once per draw: their batches shrink as the draws grow."""
        return map_batches(
            fn,
            X.shape[0],
            self._batches_of(X, handle_unknown),
            inference_batch_rows(
                self.module, self.device, n_draws, input_width=_dense_width(X)
            ),
        )

    def _refuse_non_finite(self, values, method, X=None, codes=None):
        """Never hand back NaN or infinities: say why instead, telling a
        diverged model from rows (of `X`) or ``codes`` far outside what it
        was trained on."""
        rows = _non_finite_rows(values)
        if rows is None:
            return
        reason = (
            self._diverged()
            or (X is not None and self._rows_far_outside(X, rows))
            or (codes is not None and self._codes_far_outside(codes, rows))
            or (
                "the model's weights have diverged (refit with a smaller "
                "learning_rate_init), or those rows lie far outside the range of "
                "the training data (check them for extreme values)."
            )
        )
        raise ValueError(
            f"{method} gave non-finite values for {len(rows)} of {len(values)} "
            f"rows: {reason}"
        )

    def _diverged(self):
        if weights_are_finite(self.module):
            return None
        return (
            "the model's weights have diverged (some are NaN or infinite). Refit "
            "it with a smaller learning_rate_init."
        )

    def _rows_far_outside(self, X, rows):
        """What makes ``rows`` of `X` unanswerable: their entry farthest from
        the training data, when it is far (None otherwise)."""
        rows = rows[:100]
        part = take_rows(X, rows)  # (of a sparse matrix: these rows, densified)
        with np.errstate(over="ignore", invalid="ignore"):
            distance = np.abs(self.schema.encode(part, "missing").targets)
        k, position = np.unravel_index(np.argmax(distance), distance.shape)
        if not distance[k, position] > FAR_OUTSIDE:
            return None
        j = self.schema.order[position]
        spec = self.schema.columns[j]
        value = X.iloc[rows[k], j] if hasattr(X, "iloc") else X[rows[k], j]
        value = value.item() if isinstance(value, np.generic) else value
        how_far = ""
        if spec.kind == "gaussian":
            how_far = (
                f", {distance[k, position]:.3g} standard deviations from the "
                "training mean"
                if np.isfinite(distance[k, position])
                else ", beyond the float32 range once standardised"
            )
        return (
            "they hold values far outside the training data, for example "
            f"{value!r} in column {spec.name!r} (row {rows[k]}){how_far}. The "
            "model is fine: check those rows for errors or unit mistakes, clip "
            "them to the training range, or set such values to NaN to count them "
            "as missing."
        )

    @staticmethod
    def _codes_far_outside(codes, rows):
        farthest = float(np.abs(codes[rows]).max())
        if not farthest > FAR_OUTSIDE:
            return None
        return (
            f"those codes lie far from the prior N(0, I) (|z| up to {farthest:.3g}); "
            "decode codes from transform or sample, or of that scale."
        )

    def to_onnx(self, method, dtype):
        """The ONNX graph of ``method`` ("transform", "inverse_transform")."""
        return onnx_export(self.module, self.schema, method, dtype)

    # ------------------------------------------------------------ its state

    def export_state(self):
        """The model as numpy arrays and plain values, keyed as the estimator's
        saved state (format 1) has always named them: no torch object, so it
        loads anywhere, and ``skops.io`` trusts it."""
        return {
            "module_": _map_tree(self.module.state_dict(), torch.Tensor, _to_numpy),
            "optimizer_": _map_tree(
                self.optimizer.state_dict(), torch.Tensor, _to_numpy
            ),
            "schema_": with_dtypes(self.schema, portable_dtype),
            "_train_seed": self.train_seed,
            "_architecture": self.architecture,
            "_chunk_warmup_epochs": self.chunk_warmup_epochs,
            "_sampling_mixture": None if self.mixture is None else self.mixture.state(),
            "_map_reference": None
            if self.reference is None
            else self.reference.state(),
        }

    STATE_KEYS = (
        "module_",
        "optimizer_",
        "schema_",
        "_train_seed",
        "_architecture",
        "_chunk_warmup_epochs",
        "_sampling_mixture",
        "_map_reference",
    )

    @classmethod
    def from_state(cls, state, epochs, device, learning_rate_init):
        """The model ``export_state`` gave, rebuilt on ``device`` (the
        ``device`` parameter: a CUDA model loads on a CPU with a warning)."""
        schema = with_dtypes(state["schema_"], dtype_from_portable)
        architecture = state["_architecture"]
        module = build_vae(
            schema.layout(),
            architecture["n_components"],
            architecture["hidden_layer_sizes"],
            architecture["activation"],
            make_generator(0, "cpu"),  # its draws are overwritten just below
        )
        tensors = _map_tree(state["module_"], np.ndarray, torch.from_numpy)
        if not all(
            torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()
        ):
            raise ValueError("some weights are NaN or infinite")
        module.load_state_dict(tensors)
        module.eval()
        # On the device the parameter asks for, as after fit; the Adam state
        # follows the parameters in load_state_dict below.
        module = module.to(_loading_device(device))
        optimizer = make_optimizer(module, learning_rate_init)
        optimizer.load_state_dict(
            _map_tree(state["optimizer_"], np.ndarray, torch.from_numpy)
        )
        return cls(
            schema,
            module,
            optimizer,
            architecture,
            state["_train_seed"],
            epochs,
            state.get("_chunk_warmup_epochs"),
            _mixture_from_state(state.get("_sampling_mixture")),
            _reference_from_state(state.get("_map_reference")),
        )


def _sample_rows(X, rows, rng, limit):
    """Up to ``limit`` of the ``rows`` of `X` (None: all), drawn at
    random, as a table of `X`'s kind: a sparse matrix stays sparse, and of a
    dask array whole blocks are read, as few as give enough rows."""
    if is_blocked(X):
        blocks, n_rows = [], 0
        for b in rng.permutation(X.numblocks[0]):
            if n_rows >= limit:
                break
            blocks.append(np.asarray(X.blocks[int(b)].compute()))
            n_rows += len(blocks[-1])
        X, rows = np.concatenate(blocks), None
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
    if len(rows) > limit:
        rows = np.sort(rng.choice(rows, limit, replace=False))
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _mixture_from_state(state):
    if state is None:
        return None
    mixture = GaussianMixture.from_state(state)
    arrays = (mixture.weights, mixture.means, mixture.cholesky)
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("the sampling mixture holds NaN or infinite values")
    return mixture


def _reference_from_state(state):
    return None if state is None else MapReference.from_state(state)


def _split_validation(n_rows, validation_fraction, rng):
    """Positions of the training rows and of the held-out validation rows."""
    n_val = int(np.ceil(validation_fraction * n_rows))
    if n_val < 1 or n_rows - n_val < 1:
        raise ValueError(
            "early_stopping=True needs at least one training and one validation "
            f"row, but X has {n_rows} rows and validation_fraction="
            f"{validation_fraction}. Pass more rows or set early_stopping=False."
        )
    order = rng.permutation(n_rows)
    return order[n_val:], order[:n_val]


def _plan(settings, n_rows, incremental, model):
    """The training call's budget for ``n_rows`` rows (``model``: the model
    that continues training, None for a new one); warns when the warm-up
    outlasts it."""
    plan = plan_budget(
        n_rows,
        settings.batch_size,
        1 if incremental else settings.max_iter,
        settings.warmup_epochs,
        settings.n_iter_no_change,
    )
    if incremental and settings.warmup_epochs == "auto":
        # Over partial_fit calls the warm-up counts on across chunks: it is
        # what a fit on the first chunk's size would plan, kept for the later
        # chunks so that the KL weight only ever grows.
        first = None if model is None else model.chunk_warmup_epochs
        if first is None:
            first = plan_budget(n_rows, settings.batch_size).warmup_epochs
        plan.warmup_epochs = first
    epochs_before = 0 if model is None else model.epochs
    if not incremental and plan.warmup_epochs >= epochs_before + plan.max_epochs:
        planned = "" if settings.max_iter != "auto" else " (planned for these rows)"
        warn_caller(
            f"warmup_epochs={plan.warmup_epochs:g} >= max_iter="
            f"{plan.max_epochs}{planned}: the KL weight never reaches beta, so "
            "training never optimises the ELBO itself. Lower warmup_epochs or "
            "raise max_iter."
        )
    return plan


def fit_model(model, X, settings, rng, *, incremental, columns=None, dtypes=None):
    """Train ``model`` on the validated table `X`; None builds a new model
    from `X`'s training rows first.

    ``rng`` (a numpy ``RandomState``) draws the validation split, then, for a
    new model, the seeds of its weights and of its training noise.
    ``columns`` and ``dtypes`` are those of the caller's DataFrame (None for
    an array). Returns the trained model and its ``FitOutcome``.
    """
    try:
        return _fit_model(model, X, settings, rng, incremental, columns, dtypes)
    except OutOfMemoryError as error:
        raise DeviceMemoryError(
            f"The device ran out of memory while fitting ({error}). Use a "
            f"smaller batch_size (now {settings.batch_size!r}) or smaller "
            f"hidden_layer_sizes (now {settings.hidden_layer_sizes!r}), or "
            "device='cpu'."
        ) from error


def _fit_model(model, X, settings, rng, incremental, columns, dtypes):
    early_stopping = settings.early_stopping and not incremental
    # Positions of the training and validation rows (None: every row trains):
    # the data layer reads them from X itself, so a float array is not copied.
    train_rows = val_rows = None
    if early_stopping:
        train_rows, val_rows = _split_validation(
            X.shape[0], settings.validation_fraction, rng
        )
    n_train = X.shape[0] if train_rows is None else len(train_rows)
    plan = _plan(settings, n_train, incremental, model)
    if model is None:
        model = TableModel.build(
            X,
            settings,
            rng.randint(MAX_SEED, size=2),
            columns=columns,
            dtypes=dtypes,
            incremental=incremental,
            rows=train_rows,
            plan=plan,
        )
    outcome = model.train(
        X,
        settings,
        plan,
        incremental=incremental,
        train_rows=train_rows,
        val_rows=val_rows,
    )
    if outcome.records:  # (an interrupted first epoch leaves nothing to fit)
        model.fit_mixture(X, train_rows)
        model.reference = None
        if settings.placement == "neighbors":
            model.fit_reference(X, train_rows)
    return model, outcome
