"""skvae: a variational autoencoder with the scikit-learn API."""

from ._estimator import VAETransformer
from ._imputer import VAEImputer
from ._skl2onnx import register_skl2onnx_converter

__version__ = "0.1.0"

__all__ = ["VAEImputer", "VAETransformer", "__version__", "register_skl2onnx_converter"]
