"""skvae: a variational autoencoder with the scikit-learn API."""

from ._estimator import VAETransformer

__version__ = "0.1.0"

__all__ = ["VAETransformer", "__version__"]
