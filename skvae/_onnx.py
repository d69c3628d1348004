"""ONNX graphs of a fitted VAE: the encoder's mean (``transform``) and the
decoder's mean (``inverse_transform``), written node by node from the weights.

No torch exporter is involved: the networks are MLPs, so each layer is one
``Gemm`` and one activation, and the table's encoding (standardising, the
count and binary transforms, label lookups, one-hot blocks, embeddings,
observed-flags) is a handful of standard operators. The same code writes a
standalone ``onnx.ModelProto`` (``export``) and the nodes of a VAETransformer
inside a scikit-learn Pipeline converted by skl2onnx (``convert_in_skl2onnx``).

Inputs and outputs. A table whose columns are all numbers (an array, or a
DataFrame of numeric columns) is one tensor ``X`` of shape (n, n_features_in_)
in the caller's column order. A table with label columns (strings,
categories, booleans) is one tensor per column, named after it, of shape
(n, 1): float for a number column, string for a label column, holding
``str(level)``. NaN, and labels not seen in training, are read as missing.
``transform``'s graph outputs ``Z`` (n, n_components).

numpy and onnx only: the torch module's weights are read once, as numpy arrays.
"""

import math

import numpy as np
from torch import nn

from ._likelihoods import WIDE_LEVELS
from ._networks import ACTIVATIONS

# ai.onnx 17 (2022) and ai.onnx.ml 2: every runtime of recent years runs them.
OPSET = 17
ML_OPSET = 2
ML_DOMAIN = "ai.onnx.ml"

# onnx.TensorProto's element types, by numpy dtype.
_FLOAT, _INT64, _STRING, _DOUBLE = 1, 7, 8, 11
_ELEMENT_TYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.float64): _DOUBLE}

_ACTIVATION_NAMES = {module: name for name, module in ACTIVATIONS.items()}

# PoissonLikelihood's ceiling on the log-rate.
_MAX_LOG_RATE = 20.0


def _array(tensor):
    return tensor.detach().cpu().numpy().astype(np.float32)


class GraphBuilder:
    """Collects nodes and initialisers under unique names.

    ``op`` adds a node and returns its output's name; ``const`` adds an
    initialiser. ``Skl2OnnxBuilder`` writes into skl2onnx's container instead.
    """

    def __init__(self):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self._count = 0

    def fresh(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint="const"):
        name = self.fresh(hint)
        self._add_initializer(self._numpy_helper.from_array(np.asarray(array), name))
        return name

    def _add_initializer(self, tensor):
        self.initializers.append(tensor)

    def op(self, op_type, *inputs, output=None, domain="", **attributes):
        output = output or self.fresh(op_type.lower())
        self._add_node(op_type, list(inputs), [output], domain, attributes)
        return output

    def split(self, x, widths):
        """``x`` split along its columns into blocks of ``widths``."""
        if len(widths) == 1:
            return [x]
        outputs = [self.fresh("block") for _ in widths]
        widths = self.const(np.array(widths, np.int64))
        self._add_node("Split", [x, widths], outputs, "", {"axis": 1})
        return outputs

    def _add_node(self, op_type, inputs, outputs, domain, attributes):
        self.nodes.append(
            self._helper.make_node(
                op_type,
                inputs,
                outputs,
                name=self.fresh(op_type),
                domain=domain,
                **attributes,
            )
        )

    # small compositions used below

    def concat(self, parts):
        return parts[0] if len(parts) == 1 else self.op("Concat", *parts, axis=1)

    def columns(self, x, positions):
        return self.op("Gather", x, self.const(np.array(positions)), axis=1)

    def scalar(self, value, dtype=np.float32):
        return self.const(np.array(value, dtype=dtype))


# ---------------------------------------------------------------- the networks


def _activation(builder, layer, h):
    """An activation layer of ``skvae._networks.ACTIVATIONS``, as torch defines it."""
    kind = _ACTIVATION_NAMES[type(layer)]
    if kind == "relu":
        return builder.op("Relu", h)
    if kind == "tanh":
        return builder.op("Tanh", h)
    if kind == "elu":
        return builder.op("Elu", h, alpha=1.0)
    if kind == "leaky_relu":
        return builder.op("LeakyRelu", h, alpha=0.01)
    if kind == "silu":
        return builder.op("Mul", h, builder.op("Sigmoid", h))
    # gelu, in its exact erf form (opset 20's Gelu is too recent to rely on).
    erf = builder.op("Erf", builder.op("Mul", h, builder.scalar(1 / math.sqrt(2))))
    half_h = builder.op("Mul", h, builder.scalar(0.5))
    return builder.op("Mul", half_h, builder.op("Add", erf, builder.scalar(1.0)))


def _mlp(builder, net, h, n_outputs=None):
    """``net`` (a ``make_mlp`` Sequential) applied to ``h``. ``n_outputs`` keeps
    the last layer's first outputs only (the encoder's means, not log-variances)."""
    linears = [i for i, layer in enumerate(net) if isinstance(layer, nn.Linear)]
    for i, layer in enumerate(net):
        if not isinstance(layer, nn.Linear):
            h = _activation(builder, layer, h)
            continue
        weight, bias = _array(layer.weight), _array(layer.bias)
        if i == linears[-1] and n_outputs is not None:
            weight, bias = weight[:n_outputs], bias[:n_outputs]
        h = builder.op(
            "Gemm", h, builder.const(weight, "W"), builder.const(bias, "b"), transB=1
        )
    return h


# ---------------------------------------------------------------- the table


def single_tensor(schema):
    """True when every column is a number: the table is one tensor ``X``."""
    return all(spec.family == "number" for spec in schema.columns)


def table_types(schema, dtype):
    """(name, onnx element type, shape) of the table's tensors: the encoder's
    inputs, the decoder's outputs."""
    number = _ELEMENT_TYPES[np.dtype(dtype)]
    if single_tensor(schema):
        return [("X", number, [None, schema.n_columns])]
    return [
        (str(spec.name), _STRING if spec.labelled else number, [None, 1])
        for spec in schema.columns
    ]


def _level_codes(builder, spec, column, as_strings):
    """int64 (n, 1): each entry's index among the column's training levels; -1
    for missing and unseen values."""
    levels = list(spec.categories)
    if as_strings:
        keys = {"keys_strings": [str(level) for level in levels]}
    else:  # LabelEncoder's float keys are float32
        column = builder.op("Cast", column, to=_FLOAT)
        keys = {"keys_floats": [float(level) for level in levels]}
    return builder.op(
        "LabelEncoder",
        column,
        domain=ML_DOMAIN,
        values_int64s=list(range(len(levels))),
        default_int64=-1,
        **keys,
    )


class _Columns:
    """The caller's columns as graph values: ``number(j)`` (n, 1) in the input
    dtype, ``codes(j)`` (n, 1) int64 for a label column."""

    def __init__(self, builder, schema, inputs):
        self.builder, self.schema, self.inputs = builder, schema, inputs
        self.single = single_tensor(schema)
        self._codes = {}

    def number(self, j):
        if self.single:
            return self.builder.columns(self.inputs[0], [j])
        return self.inputs[j]

    def codes(self, j):
        if j not in self._codes:
            source = self.number(j) if self.single else self.inputs[j]
            self._codes[j] = _level_codes(
                self.builder, self.schema.columns[j], source, not self.single
            )
        return self._codes[j]


def _numeric_values(builder, schema, columns, dtype):
    """The model's number columns (all but the categorical ones), in its order:
    (values in the input dtype, 0 where missing; missing, a bool tensor)."""
    positions = [j for j in schema.order if schema.columns[j].kind != "categorical"]
    if columns.single and not any(schema.columns[j].labelled for j in positions):
        # The common case, one Gather (none when the order is the caller's).
        values = (
            columns.inputs[0]
            if positions == list(range(schema.n_columns))
            else builder.columns(columns.inputs[0], positions)
        )
        missing = builder.op("IsNaN", values)
    else:
        entries, holes = [], []
        for j in positions:
            if schema.columns[j].labelled:  # a Bernoulli of two levels: 0 or 1
                codes = columns.codes(j)
                entries.append(
                    builder.op("Cast", codes, to=_ELEMENT_TYPES[np.dtype(dtype)])
                )
                holes.append(builder.op("Less", codes, builder.scalar(0, np.int64)))
            else:
                entries.append(columns.number(j))
                holes.append(builder.op("IsNaN", entries[-1]))
        values, missing = builder.concat(entries), builder.concat(holes)
    values = builder.op("Where", missing, builder.scalar(0, dtype), values)
    return values, missing


def _read_numbers(builder, schema, layout, values, missing, dtype):
    """What ``TableReader`` makes of the number columns: standardised Gaussian
    columns, standardised log1p(count), -1/+1 binaries; 0 where missing."""
    specs = [s for s in schema.ordered() if s.kind != "categorical"]
    mean = np.array([s.mean if s.kind == "gaussian" else 0.0 for s in specs], dtype)
    scale = np.array([s.scale if s.kind == "gaussian" else 1.0 for s in specs], dtype)
    x = builder.op(
        "Div", builder.op("Sub", values, builder.const(mean)), builder.const(scale)
    )
    if np.dtype(dtype) != np.float32:  # standardised in the input's precision
        x = builder.op("Cast", x, to=_FLOAT)
    observed = builder.op("Cast", builder.op("Not", missing), to=_FLOAT)
    if layout.n_numeric == layout.n_gaussian:
        return builder.op("Mul", x, observed), observed
    widths = {
        "gaussian": layout.n_gaussian,
        "poisson": layout.n_poisson,
        "bernoulli": layout.n_bernoulli,
    }
    kinds = [kind for kind, width in widths.items() if width]
    split = builder.split(x, [widths[kind] for kind in kinds])
    blocks = dict(zip(kinds, split, strict=True))
    if "poisson" in blocks:
        counts = builder.op("Max", blocks["poisson"], builder.scalar(0.0))
        log1p = builder.op("Log", builder.op("Add", counts, builder.scalar(1.0)))
        log_mean = np.array(layout.poisson_log_mean, np.float32)
        log_scale = np.array(layout.poisson_log_scale, np.float32)
        blocks["poisson"] = builder.op(
            "Div",
            builder.op("Sub", log1p, builder.const(log_mean)),
            builder.const(log_scale),
        )
    if "bernoulli" in blocks:
        doubled = builder.op("Mul", blocks["bernoulli"], builder.scalar(2.0))
        blocks["bernoulli"] = builder.op("Sub", doubled, builder.scalar(1.0))
    read = builder.concat(list(blocks.values()))
    return builder.op("Mul", read, observed), observed


def encoder_graph(builder, module, schema, inputs, output, dtype=np.float32):
    """Nodes computing ``transform``'s posterior means into ``output`` from the
    table's ``inputs`` (names, in the order of ``table_types``)."""
    layout = schema.layout()
    reader = module.encoder.reader
    columns = _Columns(builder, schema, inputs)
    parts, observed = [], []
    if layout.n_numeric:
        values, missing = _numeric_values(builder, schema, columns, dtype)
        numbers, seen = _read_numbers(builder, schema, layout, values, missing, dtype)
        parts.append(numbers)
        observed.append(seen)
    categorical = [j for j in schema.order if schema.columns[j].kind == "categorical"]
    codes = [columns.codes(j) for j in categorical]
    seen_levels = [
        builder.op(
            "Cast",
            builder.op("GreaterOrEqual", c, builder.scalar(0, np.int64)),
            to=_FLOAT,
        )
        for c in codes
    ]
    n_levels = [schema.columns[j].n_levels for j in categorical]
    # One-hot blocks first, then the embeddings, as TableReader concatenates them.
    for c, n in zip(codes, n_levels, strict=True):
        if n <= WIDE_LEVELS:  # a missing or unseen entry (-1) is all zeros
            grid = builder.const(np.arange(n, dtype=np.int64)[None, :])
            parts.append(builder.op("Cast", builder.op("Equal", c, grid), to=_FLOAT))
    wide = [
        (c, seen)
        for c, seen, n in zip(codes, seen_levels, n_levels, strict=True)
        if n > WIDE_LEVELS
    ]
    for (c, seen), embedding in zip(wide, reader.embeddings, strict=True):
        index = builder.op(
            "Squeeze",
            builder.op("Max", c, builder.scalar(0, np.int64)),
            builder.const(np.array([1], np.int64)),
        )
        table = builder.const(_array(embedding.weight), "embedding")
        embedded = builder.op("Gather", table, index, axis=0)
        parts.append(builder.op("Mul", embedded, seen))
    if reader.mask_inputs:
        parts.extend([*observed, *seen_levels])
    z = _mlp(builder, module.encoder.net, builder.concat(parts), module.n_components)
    to = _ELEMENT_TYPES[np.dtype(dtype)]
    return builder.op("Cast", z, to=to, output=output)


# ---------------------------------------------------------------- the decoder


def decoder_graph(builder, module, schema, z, outputs, dtype=np.float32):
    """Nodes computing ``inverse_transform`` (the mean of p(x|z), in the
    caller's units; a label column's most probable level) from the codes ``z``
    into ``outputs`` (names, in the order of ``table_types``)."""
    z = builder.op("Cast", z, to=_FLOAT)
    params = _mlp(builder, module.decoder.net, z)
    likelihood = module.likelihood
    blocks = builder.split(params, likelihood._widths)
    ordered = schema.ordered()
    values = []  # one (n, 1) value per model column, as decode reads them
    for block, part in zip(likelihood.blocks, blocks, strict=True):
        width = getattr(block, "n_features", 1)
        values.extend(_block_values(builder, block, part, width, dtype))
    single = single_tensor(schema)
    entries = {}
    for spec, position, value in zip(ordered, schema.order, values, strict=True):
        entries[position] = _in_caller_units(builder, spec, value, schema, dtype)
    if single:
        return builder.op(
            "Identity",
            builder.concat([entries[j] for j in range(schema.n_columns)]),
            output=outputs[0],
        )
    for j, name in enumerate(outputs):
        builder.op("Identity", entries[j], output=name)
    return outputs


def _block_values(builder, block, params, width, dtype):
    """A likelihood block's means, one (n, 1) value per column: floats, or a
    label column's level index (int64)."""
    kind = type(block).__name__
    if kind == "CategoricalLikelihood":
        logits = params
        if block.project is not None:
            weight, bias = _array(block.project.weight), _array(block.project.bias)
            logits = builder.op(
                "Gemm", params, builder.const(weight), builder.const(bias), transB=1
            )
        return [builder.op("ArgMax", logits, axis=1, keepdims=1)]
    if kind == "PoissonLikelihood":
        offset = _array(block.log_rate_offset)
        log_rate = builder.op("Add", params, builder.const(offset))
        capped = builder.op("Min", log_rate, builder.scalar(_MAX_LOG_RATE))
        means = builder.op("Exp", capped)
    elif kind == "BernoulliLikelihood":
        means = builder.op("Sigmoid", params)
    else:
        means = params
    means = builder.op("Cast", means, to=_ELEMENT_TYPES[np.dtype(dtype)])
    if width == 1:
        return [means]
    return [builder.columns(means, [i]) for i in range(width)]


def _in_caller_units(builder, spec, value, schema, dtype):
    """One decoded column as ``TableSchema.decode`` returns it."""
    number = _ELEMENT_TYPES[np.dtype(dtype)]
    if spec.kind == "categorical" or spec.labelled:
        if spec.kind != "categorical":  # a two-level Bernoulli: the likelier level
            value = builder.op(
                "Cast",
                builder.op("Greater", value, builder.scalar(0.5, dtype)),
                to=_INT64,
            )
        levels = list(spec.categories)
        if single_tensor(schema):  # numbers used as labels
            mapping = {"values_floats": [float(v) for v in levels]}
        else:
            mapping = {"values_strings": [str(v) for v in levels]}
        label = builder.op(
            "LabelEncoder",
            value,
            domain=ML_DOMAIN,
            keys_int64s=list(range(len(levels))),
            **mapping,
        )
        return builder.op("Cast", label, to=number) if single_tensor(schema) else label
    if spec.constant:
        # Its constant, whatever the model says, in a column of value's shape.
        zeros = builder.op("Mul", value, builder.scalar(0, dtype))
        return builder.op("Add", zeros, builder.scalar(spec.mean, dtype))
    if spec.kind == "gaussian":
        value = builder.op(
            "Add",
            builder.op("Mul", value, builder.scalar(spec.scale, dtype)),
            builder.scalar(spec.mean, dtype),
        )
    if schema.is_frame and np.issubdtype(_numpy_dtype(spec.dtype), np.integer):
        limits = np.iinfo(_numpy_dtype(spec.dtype))
        value = builder.op(
            "Clip",
            builder.op("Round", value),
            builder.scalar(limits.min, dtype),
            builder.scalar(limits.max, dtype),
        )
    return value


def _numpy_dtype(dtype):
    return np.dtype(getattr(dtype, "numpy_dtype", dtype))


# ---------------------------------------------------------------- models


def export(module, schema, method, dtype):
    """A standalone ``onnx.ModelProto`` of ``method`` ("transform" or
    "inverse_transform") for numbers of ``dtype``."""
    from onnx import checker, helper

    quantile = [s.name for s in schema.columns if s.kind == "quantile"]
    if quantile:
        raise ValueError(
            f"to_onnx cannot export the normal-score map of columns {quantile} "
            "(likelihood 'quantile'). Refit with likelihood 'gaussian' for them "
            "to export the model, or serve it with pickle or skops."
        )
    builder = GraphBuilder()
    number = _ELEMENT_TYPES[np.dtype(dtype)]
    if method == "transform":
        inputs = table_types(schema, dtype)
        outputs = [("Z", number, [None, module.n_components])]
        encoder_graph(
            builder, module, schema, [n for n, _, _ in inputs], "Z", dtype=dtype
        )
    else:
        inputs = [("Z", number, [None, module.n_components])]
        outputs = table_types(schema, dtype)
        decoder_graph(
            builder, module, schema, "Z", [n for n, _, _ in outputs], dtype=dtype
        )
    graph = helper.make_graph(
        builder.nodes,
        f"skvae_{method}",
        [helper.make_tensor_value_info(*spec) for spec in inputs],
        [helper.make_tensor_value_info(*spec) for spec in outputs],
        initializer=builder.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid(ML_DOMAIN, ML_OPSET),
        ],
        producer_name="skvae",
    )
    checker.check_model(model, full_check=True)
    return model
