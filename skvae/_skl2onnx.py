"""skl2onnx's converter for VAETransformer, so that a Pipeline holding one
converts with ``skl2onnx.to_onnx`` like any scikit-learn model.

skl2onnx is imported only when the converter is registered: it is an optional
dependency (``pip install skvae[onnx]``).
"""

import numpy as np

from ._estimator import VAETransformer
from ._onnx import ML_DOMAIN, ML_OPSET, GraphBuilder, encoder_graph, single_tensor

_ALIAS = "SkvaeVAETransformer"


class _ContainerBuilder(GraphBuilder):
    """``GraphBuilder`` writing into skl2onnx's container under its scope's names."""

    def __init__(self, scope, container):
        super().__init__()
        self.scope, self.container = scope, container

    def fresh(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def _add_initializer(self, tensor):
        self.container.add_initializer(tensor.name, None, None, tensor)

    def _add_node(self, op_type, inputs, outputs, domain, attributes):
        self.container.add_node(
            op_type,
            inputs,
            outputs,
            op_domain=domain,
            op_version=ML_OPSET if domain == ML_DOMAIN else None,
            name=self.scope.get_unique_operator_name(op_type),
            **attributes,
        )


def _shape(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    (source,) = operator.inputs
    double = isinstance(source.type, DoubleTensorType)
    tensor = DoubleTensorType if double else FloatTensorType
    n_rows = source.get_first_dimension()
    operator.outputs[0].type = tensor([n_rows, operator.raw_operator.n_components])


def _convert(scope, operator, container):
    from skl2onnx.common.data_types import DoubleTensorType

    vae = operator.raw_operator
    if not single_tensor(vae.schema_):
        raise NotImplementedError(
            "skl2onnx hands a VAETransformer one tensor of numbers, but this model "
            "was fitted on a table with label columns. Export it on its own with "
            "VAETransformer.to_onnx, which takes one input per column."
        )
    (source,) = operator.inputs
    dtype = np.float64 if isinstance(source.type, DoubleTensorType) else np.float32
    encoder_graph(
        _ContainerBuilder(scope, container),
        vae.module_,
        vae.schema_,
        [source.full_name],
        operator.outputs[0].full_name,
        dtype=dtype,
    )


def register_skl2onnx_converter():
    """Teach skl2onnx to convert :class:`VAETransformer` (its ``transform``).

    After this call ``skl2onnx.to_onnx`` converts a VAETransformer, or any
    Pipeline holding one, into one ONNX graph. The model must have been
    fitted on a table of numbers, which is what a Pipeline step receives; for
    a table with label columns, use :meth:`VAETransformer.to_onnx`. Needs
    ``skl2onnx`` (``pip install skvae[onnx]``). Calling it again does nothing
    new.

    Examples
    --------
    >>> import numpy as np
    >>> from skl2onnx import to_onnx
    >>> from skvae import VAETransformer, register_skl2onnx_converter
    >>> register_skl2onnx_converter()
    >>> X = np.random.RandomState(0).normal(size=(100, 5)).astype(np.float32)
    >>> vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    >>> model = to_onnx(vae.fit(X), X[:1])
    >>> [o.name for o in model.graph.output]
    ['variable']
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as error:
        raise ImportError(
            "register_skl2onnx_converter needs skl2onnx: pip install skvae[onnx]"
        ) from error
    update_registered_converter(VAETransformer, _ALIAS, _shape, _convert)
