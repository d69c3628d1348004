"""skvae: a variational autoencoder with the scikit-learn API."""

from ._estimator import VAETransformer
from ._imputer import VAEImputer

__version__ = "0.1.0"

__all__ = ["VAEImputer", "VAETransformer", "__version__"]
