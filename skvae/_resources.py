"""What a model will cost in memory, checked before anything is allocated.

A typo in a parameter (``hidden_layer_sizes=(10**9,)``) must get an error that
says what it would need, not an out-of-memory kill of the user's session. The
estimate counts what training holds for sure: each parameter four times
(weights, gradients, Adam's two moments) and a batch's activations, forward and
backward; and what one row of the importance-sampled methods holds.

Torch and the standard library only.
"""

import os

import torch

from ._likelihoods import WIDE_LEVELS, embedding_dim

# Refuse when the estimate exceeds this share of the memory available: the
# estimate leaves out the framework's own workspace.
USABLE_SHARE = 0.8

_FLOAT = 4  # bytes


def _mlp_sizes(sizes):
    """(parameters, widest layer) of an MLP through ``sizes``."""
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    parameters = sum((n_in + 1) * n_out for n_in, n_out in pairs)
    return parameters, max(sizes)


def estimate(layout, n_components, hidden_layer_sizes, batch_size, n_draws):
    """Bytes that training and scoring need, from the table's ``ModelLayout``.

    Returns a dict: ``parameters`` (count), ``training`` (the parameters' four
    copies plus a batch's activations) and ``scoring_row`` (one row of
    ``score_samples`` with ``n_draws`` importance samples).
    """
    narrow = sum(n for n in layout.levels if n <= WIDE_LEVELS)
    embedded = [(n, embedding_dim(n)) for n in layout.levels if n > WIDE_LEVELS]
    width = (
        layout.n_numeric
        + narrow
        + sum(dim for _, dim in embedded)
        + (layout.n_columns if layout.mask_inputs else 0)
    )
    n_params = (
        layout.n_gaussian
        + layout.n_poisson
        + layout.n_bernoulli
        + narrow
        + sum(dim for _, dim in embedded)
    )
    encoder, widest_encoder = _mlp_sizes([width, *hidden_layer_sizes, 2 * n_components])
    decoder, widest_decoder = _mlp_sizes(
        [n_components, *reversed(hidden_layer_sizes), n_params]
    )
    tables = sum(n * dim for n, dim in embedded) + sum(
        (dim + 1) * n for n, dim in embedded
    )
    parameters = encoder + decoder + tables + layout.n_gaussian
    activations = 2 * (sum(hidden_layer_sizes) * 2 + width + n_params + n_components)
    n_values = layout.n_numeric + sum(layout.levels)
    return {
        "parameters": parameters,
        "training": _FLOAT * (4 * parameters + batch_size * activations),
        "scoring_row": _FLOAT
        * n_draws
        * (2 * max(widest_encoder, widest_decoder) + n_values),
    }


def available_bytes(device):
    """Memory free for a new allocation on ``device`` (None: unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:  # Linux: what the kernel could give without swapping
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n_bytes):
    return f"{n_bytes / 2**30:,.1f} GiB"


def check_fits(layout, n_components, hidden_layer_sizes, batch_size, n_draws, device):
    """Refuse, naming the parameter to change, a model whose ``estimate``
    exceeds the memory available on ``device``."""
    available = available_bytes(device)
    if available is None:
        return
    usable = USABLE_SHARE * available
    sizes = (n_components, hidden_layer_sizes, batch_size, n_draws)
    needs = estimate(layout, *sizes)
    where = f"the {torch.device(device).type} device has {_gib(available)} available"
    if needs["training"] > usable:
        raise ValueError(
            f"This model would need about {_gib(needs['training'])} to train "
            f"({needs['parameters']:,} parameters with their gradients and optimiser "
            f"state, and a batch of {batch_size:,} rows), but {where}. "
            f"{_what_to_change(layout, sizes, usable)}"
        )
    if needs["scoring_row"] > usable:
        raise ValueError(
            f"score_samples and impute would need about {_gib(needs['scoring_row'])} "
            f"for a single row with n_importance_samples={n_draws:,}, but {where}. "
            "Use fewer importance samples (n_importance_samples)."
        )


# What each parameter is brought down to, in turn, to find the one at fault.
_MODEST = {"n_components": 2, "hidden_layer_sizes": 512, "batch_size": 128}


def _what_to_change(layout, sizes, usable):
    """The parameter whose modest value alone would make training fit."""
    n_components, hidden_layer_sizes, batch_size, n_draws = sizes
    widths = [min(width, _MODEST["hidden_layer_sizes"]) for width in hidden_layer_sizes]
    tries = {
        "n_components": (
            min(n_components, _MODEST["n_components"]),
            hidden_layer_sizes,
            batch_size,
        ),
        "hidden_layer_sizes": (n_components, widths[:2], batch_size),
        "batch_size": (
            n_components,
            hidden_layer_sizes,
            min(batch_size, _MODEST["batch_size"]),
        ),
    }
    now = {
        "n_components": n_components,
        "hidden_layer_sizes": tuple(hidden_layer_sizes),
        "batch_size": batch_size,
    }
    for name, changed in tries.items():
        if estimate(layout, *changed, n_draws)["training"] <= usable:
            return f"Use a smaller {name} (now {now[name]!r})."
    return (
        f"The table itself is too wide for this device ({layout.n_columns:,} "
        "columns; label columns count one input per level): drop or merge "
        "columns, or use smaller n_components, hidden_layer_sizes and batch_size "
        f"(now {now['n_components']!r}, {now['hidden_layer_sizes']!r} and "
        f"{now['batch_size']!r})."
    )


def check_output_fits(n_rows, n_components, n_columns):
    """Refuse a ``sample`` whose codes and rows (float64) cannot fit in host
    memory, before drawing them."""
    needs = n_rows * (_FLOAT * n_components + 8 * n_columns)
    available = available_bytes("cpu")
    if available is not None and needs > USABLE_SHARE * available:
        raise ValueError(
            f"sample(n_samples={n_rows:,}) would need about {_gib(needs)} for the "
            f"generated rows, but the host has {_gib(available)} available. Draw "
            "fewer rows at a time."
        )
