"""VAEImputer: the scikit-learn imputer built on a VAETransformer.

A transformer has one ``transform``: VAETransformer's returns latent codes, an
imputer's must return the filled table. So imputation is a method of the model
(``VAETransformer.impute``) and this thin meta-estimator exposes it as
``transform``, for pipelines and for searches over the wrapped model's
parameters (``estimator__n_components``).
"""

from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._estimator import VAETransformer


class VAEImputer(TransformerMixin, BaseEstimator):
    """Fill missing entries with a variational autoencoder's predictions.

    Fits a :class:`VAETransformer` on the table, holes and all (its ELBO counts
    observed entries only and its encoder is told which entries are missing),
    then fills each row's missing entries with their expectation given the
    row's observed entries (see :meth:`VAETransformer.impute`). Mixed tables
    work as they are: numbers get a predicted value, categorical and boolean
    columns their most probable level.

    Parameters
    ----------
    estimator : VAETransformer, default=None
        The model to fit (cloned). None uses ``VAETransformer()`` with its
        defaults. Its parameters are searchable as ``estimator__<name>``.

    Attributes
    ----------
    estimator_ : VAETransformer
        The fitted model.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    sklearn.impute.SimpleImputer : Fills with a column's mean or mode.
    sklearn.impute.KNNImputer : Fills from the nearest complete rows.
    sklearn.impute.IterativeImputer : Regresses each column on the others.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEImputer, VAETransformer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(200, 4) @ rng.randn(4, 6)
    >>> X[rng.rand(*X.shape) < 0.2] = np.nan
    >>> imputer = VAEImputer(VAETransformer(max_iter=5, random_state=0))
    >>> X_filled = imputer.fit_transform(X)
    >>> X_filled.shape, bool(np.isnan(X_filled).any())
    ((200, 6), False)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "impute"]), None],
    }

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y=None):
        """Fit the model on `X`, missing entries included.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; a numpy array or a pandas DataFrame of any column types.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VAEImputer
            The fitted imputer.
        """
        try:
            return self._fit(X)
        except BaseException:
            # A failed fit never leaves the previous model looking fitted.
            for name in ("estimator_", "n_features_in_", "feature_names_in_"):
                self.__dict__.pop(name, None)
            raise

    @_fit_context(prefer_skip_nested_validation=False)
    def _fit(self, X):
        # Decorated here rather than on fit so that parameter validation errors,
        # too, pass through fit's clean-up of the fitted state.
        estimator = VAETransformer() if self.estimator is None else self.estimator
        fitted = clone(estimator).fit(X)
        self.__dict__.pop("feature_names_in_", None)
        self.estimator_ = fitted
        self.n_features_in_ = fitted.n_features_in_
        if hasattr(fitted, "feature_names_in_"):
            self.feature_names_in_ = fitted.feature_names_in_
        return self

    def transform(self, X):
        """Fill the missing entries of `X`; observed entries are kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with missing entries (NaN, None or ``pd.NA``).

        Returns
        -------
        X_filled : ndarray or DataFrame of shape (n_samples, n_features)
            `X` with its holes filled, a DataFrame with the training dtypes if
            the model was fitted on one.
        """
        check_is_fitted(self)
        return self.estimator_.impute(X)

    def get_feature_names_out(self, input_features=None):
        """Get the names of the output columns, which are the input columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; defaults to ``feature_names_in_`` or
            ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input feature names.
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.sparse = True  # fitted as VAETransformer fits it
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
