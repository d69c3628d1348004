"""The scikit-learn facade: parameters, validation, numpy <-> tensors, fitted state.

This is the only module that knows scikit-learn. The networks, the likelihoods and
the training loop live in their own torch-only modules.
"""

import copy
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._likelihoods import LIKELIHOODS, make_likelihood
from ._networks import ACTIVATIONS, VAE
from ._training import NonFiniteLossError, TrainingConfig, elbo_terms, train

# Rows pushed through the networks at once by transform, inverse_transform,
# score_samples and sample: large enough to amortise per-call overhead, small
# enough that a huge input never builds one giant tensor.
_INFERENCE_BATCH_SIZE = 8192

# score_samples averages log p(x|z) over this many draws of z per row. The draws
# are the same for every row and every call (common random numbers), so scores are
# deterministic and a row's score does not depend on the rows scored with it.
_N_SCORE_DRAWS = 16
_SCORE_SEED = 0

_MAX_SEED = np.iinfo(np.int32).max


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but no CUDA device is available to torch "
            "(torch.cuda.is_available() is False). Use device='cpu' or device='auto'."
        )
    return torch.device(device)


def _make_generator(seed, device):
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _standardization(X):
    """Per-feature mean and scale of ``X``; constant features keep a scale of 1."""
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, scale


def _check_numeric_columns(X):
    """Name the DataFrame columns that are not numbers, before numpy's terser error."""
    if not isinstance(X, pd.DataFrame):
        return
    bad = {
        str(column): str(dtype)
        for column, dtype in X.dtypes.items()
        if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype))
    }
    if bad:
        raise ValueError(
            f"VAETransformer needs numeric columns, but these are not: {bad}. "
            "Encode them first, for example with sklearn.preprocessing.OneHotEncoder "
            "in a sklearn.compose.ColumnTransformer."
        )


class VAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder for non-linear, probabilistic dimensionality reduction.

    An MLP encoder maps each row x to the mean and log-variance of a diagonal
    Gaussian q(z|x) over ``n_components`` latent dimensions, with prior
    p(z) = N(0, I). An MLP decoder maps z to the parameters of p(x|z) (see
    ``likelihood``). Training maximises the evidence lower bound (ELBO)
    ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))`` per row with minibatch Adam,
    the reparameterisation trick and the closed-form Gaussian KL.

    With ``likelihood="gaussian"`` the inputs are standardised internally with the
    training data's mean and standard deviation, so unscaled tables work as they
    are; :meth:`inverse_transform` and :meth:`sample` answer in the caller's scale.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.
    hidden_layer_sizes : array-like of int, default=(256, 128)
        Widths of the encoder's hidden layers; the decoder uses them in reverse
        order. An empty tuple gives a linear encoder and decoder.
    activation : {"relu", "elu", "gelu", "silu", "tanh", "leaky_relu"}, default="elu"
        Non-linearity between hidden layers.
    likelihood : {"gaussian", "bernoulli"}, default="gaussian"
        The distribution p(x|z) of a row given its latent code.

        - ``"gaussian"``: independent Gaussians whose means the decoder predicts
          and whose variances are learned per feature (bounded below, so
          near-constant features cannot make the likelihood diverge).
        - ``"bernoulli"``: independent Bernoullis whose probabilities the decoder
          predicts; data must lie in [0, 1] and is not standardised.
    beta : float, default=1.0
        Weight of the KL term. ``beta=1`` maximises the true ELBO; larger values
        give a smoother, more disentangled latent space at the cost of
        reconstruction.
    batch_size : int, default=128
        Rows per minibatch. Clipped to the number of rows.
    learning_rate_init : float, default=1e-3
        Step size of the Adam optimiser.
    max_iter : int, default=200
        Maximum number of epochs (passes over the training data).
    tol : float, default=1e-4
        Minimum decrease of the epoch loss (nats per row) that counts as an
        improvement.
    n_iter_no_change : int, default=10
        Training stops once this many consecutive epochs improve the loss by
        less than ``tol``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the minibatch order and the
        reparameterisation noise. An int gives bit-identical results on CPU across
        calls. The global torch and numpy random states are never touched.
    verbose : int, default=0
        Print the loss after every epoch when positive.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the networks train and run. ``"auto"`` picks CUDA when available.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained VAE, with ``encoder``, ``decoder`` and ``likelihood``
        sub-modules.
    mean_ : ndarray of shape (n_features_in_,)
        Per-feature mean subtracted before encoding (zeros for ``"bernoulli"``).
    scale_ : ndarray of shape (n_features_in_,)
        Per-feature standard deviation divided out before encoding (ones for
        ``"bernoulli"``, and 1 for constant features).
    loss_curve_ : list of float
        Training objective after each epoch: the mean negative ELBO per row in
        nats, in the caller's units of ``X`` (with ``beta != 1`` the KL term is
        weighted by ``beta``).
    n_iter_ : int
        Number of epochs run.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :meth:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction; a VAE with a
        linear decoder and Gaussian likelihood recovers probabilistic PCA.
    sklearn.decomposition.KernelPCA : Non-linear, but with no generative model.

    Notes
    -----
    :meth:`score_samples` returns a Monte Carlo estimate of the ELBO, a lower
    bound of log p(x). It uses the same draws of z for every row and every call,
    so it is deterministic and does not depend on which rows are scored together.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes",
       ICLR 2014. https://arxiv.org/abs/1312.6114

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAETransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAETransformer(n_components=2, max_iter=5, random_state=0)
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
        "likelihood": [StrOptions(set(LIKELIHOODS))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(256, 128),
        activation="elu",
        likelihood="gaussian",
        beta=1.0,
        batch_size=128,
        learning_rate_init=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        random_state=None,
        verbose=0,
        device="auto",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.beta = beta
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None):
        """Train the VAE on `X`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: a numpy array or a pandas DataFrame of numbers.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAETransformer
            The fitted estimator.
        """
        try:
            self._fit(X)
        except BaseException:
            # Never leave a half-fitted estimator that passes check_is_fitted.
            self._clear_fitted_state()
            raise
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X):
        # Decorated here rather than on fit so that parameter validation errors,
        # too, pass through fit's clean-up of the fitted state.
        X = self._validate_X(X, reset=True)
        hidden_layer_sizes = self._check_hidden_layer_sizes()
        device = _resolve_device(self.device)
        seed_rng = check_random_state(self.random_state)
        init_seed, train_seed = seed_rng.randint(_MAX_SEED, size=2)

        if self.likelihood == "gaussian":
            mean, scale = _standardization(X)
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])

        module = VAE(
            n_features=X.shape[1],
            n_components=self.n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=self.activation,
            likelihood=make_likelihood(self.likelihood, X.shape[1]),
            generator=_make_generator(init_seed, "cpu"),
        ).to(device)
        config = TrainingConfig(
            batch_size=self.batch_size,
            learning_rate=self.learning_rate_init,
            max_epochs=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            beta=self.beta,
        )
        X_train = torch.tensor(
            ((X - mean) / scale).astype(np.float32, copy=False), device=device
        )
        try:
            history = train(
                module,
                X_train,
                config,
                generator=_make_generator(train_seed, device),
                log=print if self.verbose else None,
            )
        except NonFiniteLossError as exc:
            raise ValueError(
                f"Training diverged: the loss became {exc.loss} at epoch {exc.epoch}. "
                f"Try a smaller learning_rate_init (now {self.learning_rate_init}), "
                "check X for extreme values, or use fewer/narrower hidden layers."
            ) from exc

        # Everything succeeded: only now does the estimator become fitted.
        log_det = float(np.log(scale).sum())
        self.module_ = module
        self.mean_ = mean
        self.scale_ = scale
        self.loss_curve_ = [loss + log_det for loss in history.loss]
        self.n_iter_ = history.n_epochs
        self._n_features_out = self.n_components

    def _clear_fitted_state(self):
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("__"):
                delattr(self, name)
        self.__dict__.pop("_n_features_out", None)

    def _check_hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ValueError(
                "hidden_layer_sizes must be a positive int or a sequence of positive "
                f"ints, got {self.hidden_layer_sizes!r}."
            )
        return [int(s) for s in sizes]

    def _validate_X(self, X, reset):
        _check_numeric_columns(X)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        if self.likelihood == "bernoulli" and X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "likelihood='bernoulli' models data in [0, 1], but X has values in "
                f"[{X.min():g}, {X.max():g}]. Rescale X (for example with "
                "sklearn.preprocessing.MinMaxScaler) or use likelihood='gaussian'."
            )
        return X

    # ---------------------------------------------------------------- inference

    def _to_model_space(self, X, device):
        return torch.tensor(
            ((X - self.mean_) / self.scale_).astype(np.float32, copy=False),
            device=device,
        )

    def _from_model_space(self, values, dtype):
        return (values.cpu().numpy() * self.scale_ + self.mean_).astype(dtype)

    def _model_device(self):
        return next(self.module_.parameters()).device

    def transform(self, X):
        """Encode `X` as the means of the posterior q(z|x).

        Deterministic: the same rows always give the same codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in the dtype of `X` (float32 or float64).
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        device = self._model_device()
        Z = np.empty((X.shape[0], self.n_components), dtype=X.dtype)
        with torch.inference_mode():
            for rows in gen_batches(X.shape[0], _INFERENCE_BATCH_SIZE):
                mu, _ = self.module_.encode(self._to_model_space(X[rows], device))
                Z[rows] = mu.cpu().numpy()
        return Z

    def inverse_transform(self, X):
        """Decode latent codes into the mean of p(x|z), in the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, for example the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            Mean of the decoder's distribution for each code.
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
        X = np.empty((Z.shape[0], self.n_features_in_), dtype=dtype)
        with torch.inference_mode():
            for rows in gen_batches(Z.shape[0], _INFERENCE_BATCH_SIZE):
                z = torch.tensor(Z[rows], dtype=torch.float32, device=device)
                params = self.module_.decode(z)
                values = (
                    likelihood.mean(params)
                    if draw is None
                    else likelihood.sample(params, generator=draw)
                )
                X[rows] = self._from_model_space(values, dtype)
        return X

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
        X_new : ndarray of shape (n_samples, n_features_in_)
            Generated rows, in the units of the training data.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"n_samples must be a positive integer, got {n_samples!r}."
            )
        seed = check_random_state(random_state).randint(_MAX_SEED)
        device = self._model_device()
        Z = torch.randn(
            (n_samples, self.n_components), generator=_make_generator(seed, "cpu")
        ).numpy()
        return self._decode(Z, draw=_make_generator(seed, device), dtype=np.float64)

    def score_samples(self, X):
        """Evidence lower bound (ELBO) of each row, in nats.

        A Monte Carlo estimate of ``E_q[log p(x|z)] - KL(q(z|x) || p(z))``, a lower
        bound of the log-likelihood log p(x), in the units of `X` (the
        standardisation's Jacobian is accounted for), so it compares with
        :meth:`sklearn.decomposition.PCA.score_samples`. Higher is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ELBO of each row.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        device = self._model_device()
        noise = torch.randn(
            (_N_SCORE_DRAWS, 1, self.n_components),
            generator=_make_generator(_SCORE_SEED, "cpu"),
        ).to(device)
        log_det = np.log(self.scale_).sum()
        scores = np.empty(X.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for rows in gen_batches(X.shape[0], _INFERENCE_BATCH_SIZE):
                x = self._to_model_space(X[rows], device)
                log_lik, kl = elbo_terms(self.module_, x, noise)
                scores[rows] = (log_lik - kl).cpu().numpy()
        return scores - log_det

    def score(self, X, y=None):
        """Mean ELBO of the rows of `X`, in nats; higher is better.

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

    # --------------------------------------------------- scikit-learn plumbing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        module = state.get("module_")
        if module is not None and self._model_device().type != "cpu":
            # Pickles load anywhere: a GPU-trained model is stored on the CPU.
            state["module_"] = copy.deepcopy(module).cpu()
        return state
