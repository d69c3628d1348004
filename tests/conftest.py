import os

# scikit-learn's check_array_api_input runs only with SciPy's array API support
# switched on, which must happen before SciPy is first imported. Without it the
# check would be skipped rather than run.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def X_small():
    """A small non-linear table with unscaled, differently scaled columns."""
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, size=(300, 2))
    return np.column_stack(
        [
            100.0 * t[:, 0],
            np.sin(t[:, 0]) + 0.05 * rng.randn(300),
            t[:, 1] ** 2 + 0.05 * rng.randn(300),
            1e-3 * t[:, 0] * t[:, 1],
            5.0 + t[:, 1],
        ]
    )


@pytest.fixture
def X_binary():
    rng = np.random.RandomState(0)
    prototypes = rng.rand(3, 12) > 0.5
    rows = prototypes[rng.randint(3, size=90)]
    flips = rng.rand(*rows.shape) < 0.05
    return (rows ^ flips).astype(np.float64)
