"""The scikit-learn facade: parameters, validation, fitted attributes, answers.

This is the only module that knows scikit-learn's estimator API, and it holds
no torch. ``VAETransformer`` checks the caller's table (``skvae._validation``),
makes one call into the table model (``skvae._model``), which does the work
(schema, networks, data layer, training), and wraps the answer: fitted
attributes after a fit, arrays or DataFrames in the caller's library after the
other methods.
"""

from numbers import Integral, Real

import numpy as np
import pandas as pd
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
from sklearn.utils.validation import check_array, check_is_fitted

from ._concurrency import fit_privately, private_copy, reads_fitted_state, state_lock
from ._model import (
    ACTIVATIONS,
    MAX_SEED,
    FitSettings,
    TableModel,
    fit_model,
    warn_caller,
)
from ._schema import KINDS, is_blocked
from ._validation import (
    as_pandas,
    check_gaussian_only,
    check_hidden_layer_sizes,
    check_same_architecture,
    check_sample_request,
    in_library,
    validate_table,
)

# The most epochs one fit may run: 100,000 steps of a small table take minutes.
_MAX_EPOCHS = 100_000

# Version of the saved state (__getstate__): a later skvae that changes it reads
# the formats it knows and refuses newer ones with a clear message.
_STATE_FORMAT = 1

# Parameters added after models were first saved, with the value that gives a
# model saved before them its old behaviour.
_ADDED_PARAMETERS = {
    "input_noise": 0.0,
    "precision": "float32",
    "sampling": "prior",
    "neighbor_weight": 0.0,
    "perplexity": 5.0,
    "placement": "encoder",
}


# ``sample(given=...)`` warns when its rows come from fewer effective codes than
# this (or than the rows asked for): they repeat a few codes; or when the model
# gives the condition a probability below _RARE: it lies beyond what was seen.
_LOW_ESS = 30
_RARE = 1e-5


def _draw_given(model, n_samples, given, seeds, from_mixture, noise):
    """``sample(given=...)``'s rows and effective sample size; refuses a
    condition no candidate meets, warns of one that few do."""
    conditions = model.schema.conditions(given)
    drawn, ess, log_probability = model.draw_given(
        n_samples, conditions, seeds, from_mixture, noise
    )
    if drawn is None:
        raise ValueError(
            f"No row of the model meets given={given!r}: every candidate code "
            "gives it a probability of zero. Relax the condition."
        )
    probability = np.exp(log_probability)
    rare = probability < _RARE and not any(c.density for c in conditions)
    if rare or ess < min(_LOW_ESS, n_samples):
        how_rare = f"a probability of {probability:.2g}" if rare else ""
        how_few = f"{ess:.1f} effective codes"
        warn_caller(
            f"sample(given={given!r}): the condition is rare under the model "
            f"({how_rare or how_few}), so the rows may not follow what the model "
            "would give it with more data. Relax the condition (a wider range, "
            "fewer columns), or check it against the training data.",
            UserWarning,
        )
    return drawn, ess


def _seed_source(random_state):
    """``check_random_state``, except that None draws fresh OS entropy.

    scikit-learn maps None to numpy's global RandomState; drawing seeds from it
    would advance the caller's global random state.
    """
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    return check_random_state(random_state)


def _part_of_model(name, part):
    """The fitted attribute ``name``: the table model's ``part``."""

    def get(estimator):
        model = estimator.__dict__.get("_model")
        if model is None:
            raise AttributeError(
                f"{type(estimator).__name__!r} object has no attribute {name!r} "
                "(it is not fitted)"
            )
        return getattr(model, part)

    return property(get, doc=f"The table model's {part} (see the class docstring).")


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
    likelihood : {"auto", "gaussian", "quantile", "bernoulli", "categorical", \
            "poisson"} or dict, default="auto"
        The distribution p(x|z) of each column given the latent code; a row's
        log-likelihood is the sum of its columns'.

        - ``"gaussian"``: the decoder predicts the mean, the variance is learned
          per column (bounded below, so near-constant columns cannot make the
          likelihood diverge); values are standardised internally.
        - ``"quantile"``: a Gaussian on the column's normal scores
          Phi^-1(F(x)), F the column's training distribution (a fitted
          piecewise-linear map): for skewed numbers, spikes (a value most rows
          hold) and integers with few values. Generated values are training
          values for a column of at most 1,000 values each held by 5 rows on
          average, else within the training range (integers rounded).
          :meth:`score_samples` counts the map's slope, so it stays a density
          in the column's units. Not exported by :meth:`to_onnx`.
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
        each call (of the epochs an automatic plan runs: it decides to run on
        at the end of each full-rate epoch), then at a quarter of it, so that
        the weights settle: lower
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
        2,048 rows (1,500 steps on the digits' 1,257 rows); beyond, at least
        as many epochs as see ``150 * 2048 * (n_rows / 2048) ** 0.4`` rows, at
        least 3 (15 epochs at 100,000 rows, 4 at a million), so that cost
        grows like ``n_rows ** 0.4`` rather than ``150 * n_rows``; then on, to
        4 times as many epochs (at most 150), while the loss still improves:
        while its best fell, over the last quarter of the epochs, by at least
        5 % of all it fell since the first. Small latent codes plateau early
        and stay fast; larger ones converge (user guide, "Training budget"). A
        fit that runs its planned budget to the end raises no
        ``ConvergenceWarning`` (an explicit int that is reached does). The
        plan is in ``training_plan_``. At most
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
    neighbor_weight : float, default=0.0
        Weight of a neighbour-preserving term added to the negative ELBO in
        training: the t-SNE divergence KL(P || Q) between the affinities of
        each minibatch's rows (as the encoder reads them: Gaussian kernels of
        ``perplexity``) and those of their latent means (a Student t kernel),
        as in parametric t-SNE and scvis. It makes the codes keep the rows'
        neighbourhoods, for maps. The likelihood and every method stay those
        of the VAE. ``loss_curve_`` and ``history_`` record the objective
        trained on: the term is counted in the reconstruction column. 0 turns
        it off.
    perplexity : float, default=5.0
        The effective number of neighbours of each row in the term's input
        affinities, within its minibatch (at most a third of the batch; of
        batches larger than 256 rows, the term compares the first 256, so that
        its cost stays small on big tables). A
        batch of 128 holds a tenth of the digits' training rows, so 5 in a
        batch is about 50 in the table. 5 was chosen on the digits; the
        settings tried are in ``benchmarks/README.md``, "Maps".
    placement : {"encoder", "neighbors"}, default="encoder"
        How :meth:`transform` places rows. ``"encoder"``: the posterior means
        of q(z|x). ``"neighbors"``: those means, then moved so that each row's
        Student t affinities to the training codes match its affinities to its
        ``3 * perplexity`` nearest training rows in the space the encoder
        reads (openTSNE's ``transform``: 50 Adam steps per row, each row on its
        own). The encoder generalises its neighbourhoods less well to new rows
        than it fits them on the training rows; on the digits' held-out rows
        this raised the map's 5-NN accuracy from 0.83 to 0.94 with the
        defaults (``benchmarks/maps.py``). The fit then keeps a random sample
        of up to 10,000 training rows (as the encoder reads them, at most
        64 MiB) and their codes in the model. :meth:`transform`'s codes are
        then no longer the posterior means that :meth:`score_samples` and
        ``return_std`` refer to, and :meth:`to_onnx` refuses the model; use
        it for maps. Training is the same either way.
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
    sampling : {"mixture", "prior"}, default="mixture"
        Where :meth:`sample` draws its latent codes from. ``"mixture"``: a
        mixture of full-covariance Gaussians (10, and one per 1,000 training
        rows on larger tables, at most 30) fitted, at the end of each
        training call, to one draw of z ~ q(z|x) for each training row (up to
        10,000 of them): the aggregate posterior, where the decoder has seen
        codes. ``"prior"``: the prior N(0, I) of the textbook VAE, which a
        trained model does not fill evenly, so that some generated rows come
        from codes no training row had. Training, :meth:`score_samples` and
        every other method use N(0, I) either way. Models saved before this
        parameter existed draw from the prior.
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
        ``batch_size``, ``max_iter`` (the most epochs it could run),
        ``min_iter`` (the size rule's epochs, which an automatic plan runs at
        least; None for a fixed plan), ``warmup_epochs``,
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
        "neighbor_weight": [Interval(Real, 0, None, closed="left")],
        "perplexity": [Interval(Real, 1, None, closed="left")],
        "placement": [StrOptions({"encoder", "neighbors"})],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "sampling": [StrOptions({"mixture", "prior"})],
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
        neighbor_weight=0.0,
        perplexity=5.0,
        placement="encoder",
        precision="float32",
        sampling="mixture",
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
        self.neighbor_weight = neighbor_weight
        self.perplexity = perplexity
        self.placement = placement
        self.precision = precision
        self.sampling = sampling
        self.n_importance_samples = n_importance_samples
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.handle_unknown = handle_unknown

    # Fitted state that scikit-learn's trailing underscore does not mark.
    _FITTED_PRIVATE = ("_model", "_n_features_out", "_frame_library")

    schema_ = _part_of_model("schema_", "schema")
    module_ = _part_of_model("module_", "module")
    optimizer_ = _part_of_model("optimizer_", "optimizer")

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
        """Run ``_fit`` on a private copy, published in one step: other threads'
        inference sees the model before this call or after it, never a mix, and
        a failed call leaves no half-fitted estimator (``fit_privately``)."""
        own = None
        if self._continues_training(incremental):
            own = {"_model": self._model.copy(), "history_": list(self.history_)}
        fit_privately(self, lambda work: work._fit(X, incremental), own)
        return self

    def _continues_training(self, incremental):
        return "_model" in self.__dict__ and (incremental or self.warm_start)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, incremental):
        # Decorated here rather than on fit so that parameter validation errors,
        # too, pass through fit's clean-up of the fitted state.
        model = self._model if self._continues_training(incremental) else None
        settings = self._settings(model)
        if is_blocked(X) or sparse.issparse(X):
            stops = self.early_stopping and not incremental
            check_gaussian_only(X, self.likelihood, stops)
        X, library = as_pandas(X)
        frame = isinstance(X, pd.DataFrame)
        columns, dtypes = (list(X.columns), list(X.dtypes)) if frame else (None, None)
        X = validate_table(self, X, model)
        trained, outcome = fit_model(
            model,
            X,
            settings,
            _seed_source(self.random_state),
            incremental=incremental,
            columns=columns,
            dtypes=dtypes,
        )
        if outcome.interrupted and model is None and not outcome.records:
            raise KeyboardInterrupt  # nothing trained: let _fit_or_reset unfit it
        if model is None:
            self.mean_, self.scale_ = trained.schema.mean, trained.schema.scale
            # Tables come back in the caller's dataframe library.
            self._frame_library = library
            self._n_features_out = self.n_components
            self.history_ = []
        self._model = trained
        self._record(outcome, early_stopping=self.early_stopping and not incremental)
        if outcome.stop_reason == "max_epochs" and not incremental:
            self._warn_if_not_converged()

    def _settings(self, model):
        """The parameters as the model reads them; refuses a changed
        architecture when ``model`` is to continue training."""
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        settings = FitSettings.from_params(self.get_params())
        if model is not None:
            check_same_architecture(model.architecture, settings.architecture())
        return settings

    def _record(self, outcome, early_stopping):
        """What a training call did, as fitted attributes (in the units of X)."""
        self.training_plan_ = outcome.training_plan
        self.history_.extend(outcome.records)
        self.n_iter_ = self._model.epochs
        self.loss_curve_ = [entry["loss"] for entry in self.history_]
        self.best_loss_ = (
            None if early_stopping else min(self.loss_curve_, default=None)
        )
        self.validation_scores_ = self.best_validation_score_ = None
        if early_stopping:
            self.validation_scores_ = [
                e["validation_score"]
                for e in self.history_
                if e["validation_score"] is not None
            ]
            self.best_validation_score_ = outcome.best_validation_score
        if outcome.interrupted:
            warn_caller(
                f"Training interrupted by the user after {self.n_iter_} epochs; the "
                "model keeps its current weights (with early_stopping=True, those of "
                "the best epoch)."
            )

    def _warn_if_not_converged(self):
        if self.max_iter != "auto":  # a planned budget that ran out is no failure
            warn_caller(
                f"VAETransformer: maximum iterations ({self.max_iter}) reached and the "
                "optimisation hasn't converged yet. Raise max_iter, or set "
                "early_stopping=True to stop on held-out data.",
                ConvergenceWarning,
            )

    # ---------------------------------------------------------------- inference

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
            return self._map_blocks("transform", X, self._model.n_components)
        X = validate_table(self, X, self._model, inference=True)
        return self._model.encode(
            X, self.handle_unknown, return_std, placement=self._placement()
        )

    def _placement(self):
        """The perplexity ``TableModel.encode`` places rows at, or None for
        the posterior means."""
        if self.placement != "neighbors":
            return None
        if self._model.reference is None:
            raise ValueError(
                "placement='neighbors' places rows against training rows that "
                "the model keeps when it is fitted with placement='neighbors'; "
                "this model was fitted without them. Refit it with "
                "placement='neighbors', or set placement='encoder'."
            )
        return self.perplexity

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
        if Z.shape[1] != self._model.n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects latent "
                f"codes with n_components={self._model.n_components} features. Pass "
                "the output of transform, not the original data."
            )
        return self._answer(self._model.decode(Z, dtype=Z.dtype))

    @reads_fitted_state
    def sample(
        self,
        n_samples=1,
        random_state=None,
        *,
        given=None,
        noise=True,
        return_ess=False,
    ):
        """Generate rows: draw z from the latent density, then x from p(x|z).

        The codes come from the mixture fitted to the training rows' codes, or
        from the prior N(0, I) (see ``sampling``). With ``given``, the rows are
        drawn from the model's distribution given those columns' values, by
        importance resampling of the codes (see the user guide's "Generating
        data").

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; an int gives the same rows on every call.
        given : dict, default=None
            Maps columns (names for a model fitted on a DataFrame, positions
            for an array) to the value every row must hold, or, for a column
            modelled as ``"gaussian"`` or ``"quantile"``, to a ``(low, high)``
            range. Values must be ones the column held in training.
        noise : bool, default=True
            Draw each value from p(x|z). False gives the mean of p(x|z) at the
            drawn codes (the most probable level of a label column): sharper
            rows from a model fitted with a low ``beta``.
        return_ess : bool, default=False
            Also return the effective sample size of the codes the rows were
            drawn from (``n_samples`` without ``given``; with it, how many of
            the candidate codes carry the draw).

        Returns
        -------
        X_new : ndarray or DataFrame of shape (n_samples, `n_features_in_`)
            Generated rows, in the units of the training data; a DataFrame with
            the training columns and dtypes if the model was fitted on one.
        ess : float
            Only with ``return_ess=True``.
        """
        check_is_fitted(self)
        check_sample_request(n_samples, given)
        seeds = _seed_source(random_state).randint(MAX_SEED, size=2)
        from_mixture = self.sampling == "mixture"
        if given:
            drawn, ess = _draw_given(
                self._model, n_samples, given, seeds, from_mixture, noise
            )
        else:
            drawn = self._model.draw(n_samples, *seeds, from_mixture, noise)
            ess = float(n_samples)
        return (self._answer(drawn), ess) if return_ess else self._answer(drawn)

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
        X = validate_table(self, X, self._model, inference=True)
        return self._model.score(X, self.n_importance_samples, self.handle_unknown)

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
        X, _ = as_pandas(X)
        frame = X if isinstance(X, pd.DataFrame) else None
        X = validate_table(self, X, self._model, inference=True)
        filled = self._model.impute(
            X, frame, self.n_importance_samples, self.handle_unknown
        )
        return self._answer(filled)

    def _answer(self, table):
        """A table in the caller's dataframe library (models saved before
        polars support have no ``_frame_library``)."""
        return in_library(table, self.__dict__.get("_frame_library"))

    def _map_blocks(self, method, X, width):
        """``method`` over the blocks of the dask array `X`, lazily: a dask
        array of ``width`` columns (None: one value per row)."""
        X = validate_table(self, X, self._model)
        dtype = np.float64 if method == "score_samples" else X.dtype
        # A frozen view of this model: fits publish new objects and never
        # change the published ones, so blocks computed later, after a fit,
        # still use the model this call saw.
        snapshot = getattr(private_copy(self), method)
        if width is None:
            meta = np.empty((0,), dtype)
            return X.map_blocks(snapshot, dtype=dtype, drop_axis=1, meta=meta)
        return X.map_blocks(
            snapshot,
            dtype=dtype,
            chunks=(X.chunks[0], (width,)),
            meta=np.empty((0, width), dtype),
        )

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
        self._check_exportable(method, dtype)
        try:
            import onnx
        except ImportError as error:
            raise ImportError(
                "to_onnx needs the onnx package: pip install skvae[onnx]"
            ) from error
        model = self._model.to_onnx(method, np.dtype(dtype))
        if path is not None:
            onnx.save(model, path)
        return model

    def _check_exportable(self, method, dtype):
        if method not in ("transform", "inverse_transform"):
            raise ValueError(
                f"method must be 'transform' or 'inverse_transform', got {method!r}."
            )
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be numpy.float32 or float64, got {dtype!r}.")
        if method == "transform" and self.placement == "neighbors":
            raise ValueError(
                "to_onnx exports the encoder's posterior means, but "
                "placement='neighbors' moves them against the training codes, "
                "which the graph cannot do. Set placement='encoder' (transform "
                "then returns the means) before exporting."
            )

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
        # about as much as encoding a row; every fitted state has a model.
        return "_model" in self.__dict__

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
        state.pop("_state_lock", None)  # a lock of this process
        model = state.pop("_model", None)
        if model is None:
            return state
        return {**state, **model.export_state(), "_skvae_format": _STATE_FORMAT}

    def __setstate__(self, state):
        # Parameters added since a model was saved take their defaults.
        state = {**_ADDED_PARAMETERS, **state}
        format_ = state.pop("_skvae_format", None)
        if format_ is None:  # an unfitted estimator
            super().__setstate__(state)
            return
        if format_ > _STATE_FORMAT:
            raise ValueError(
                f"This model was saved by a newer skvae (state format {format_}); "
                f"this version reads formats up to {_STATE_FORMAT}. Upgrade "
                "skvae to load it."
            )
        try:
            saved = {
                key: state.pop(key) for key in TableModel.STATE_KEYS if key in state
            }
            super().__setstate__(state)
            self._model = TableModel.from_state(
                saved, self.n_iter_, self.device, self.learning_rate_init
            )
        except Exception as error:  # noqa: BLE001 - whatever was altered
            raise ValueError(
                "This saved VAETransformer is damaged or was altered: its state "
                f"does not rebuild a model ({type(error).__name__}: {error}). "
                "Load an intact copy, or fit the model again."
            ) from error
