"""Normal-score maps: the fitted marginal transform of ``"quantile"`` columns.

A ``"quantile"`` column is modelled by a Gaussian on its normal scores
g(x) = Phi^-1(F(x)), where F is the column's training distribution function.
The map is fitted once, in numpy, from the observed training values:

- its knots are the column's distinct values (at most ``MAX_KNOTS``; beyond,
  that many of its quantiles), and a knot's normal score is Phi^-1 of its
  *mid-distribution* value P(X < v) + P(X = v) / 2, so that a value held by
  many rows (a spike, such as a capital gain of 0) sits in the middle of its
  probability mass;
- between knots g is linear, and beyond the first and last knot it goes on
  with the slope of the nearest segment: g is strictly increasing, defined on
  the whole line, and its slope g'(x) enters ``score_samples`` as the
  change-of-variables term log g'(x) (the Gaussian column's is -log scale);
- decoding inverts it. A *discrete* column (at most ``MAX_KNOTS`` distinct
  values, each held by ``DISCRETE_REPEATS`` rows on average) decodes to the
  knot whose probability interval [Phi^-1(F(v-)), Phi^-1(F(v))] holds the
  score: draws take exactly the training values, in their training shares when
  the scores are standard normal. A continuous column decodes by linear
  interpolation between knots, within the training range, and an
  integer-valued one is rounded.

numpy and scipy only.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

MAX_KNOTS = 1000
DISCRETE_REPEATS = 5


@dataclass(frozen=True)
class NormalScoreMap:
    """One column's fitted map; see the module docstring.

    ``edges`` (discrete columns only, else None): the K - 1 normal scores
    that separate consecutive knots' probability intervals.
    """

    knots: np.ndarray
    scores: np.ndarray
    edges: np.ndarray | None
    integer: bool

    @classmethod
    def fit(cls, values):
        """The map of a column's observed values (1-D, finite, not empty)."""
        values = np.sort(np.asarray(values, dtype=np.float64))
        n = len(values)
        distinct = np.unique(values)
        discrete = len(distinct) <= MAX_KNOTS and n >= DISCRETE_REPEATS * len(distinct)
        knots = distinct
        if len(distinct) > MAX_KNOTS:
            levels = np.linspace(0.0, 1.0, MAX_KNOTS)
            knots = np.unique(np.quantile(values, levels, method="inverted_cdf"))
        below = np.searchsorted(values, knots, side="left") / n
        up_to = np.searchsorted(values, knots, side="right") / n
        scores = ndtri((below + up_to) / 2.0)  # mid-distribution, in (0, 1)
        integer = bool(np.all(values == np.round(values)))
        if len(knots) == 1:  # a constant: any increasing map; slope 1 keeps it
            knots, scores = np.array([knots[0], knots[0] + 1.0]), np.array([0.0, 1.0])
            return cls(knots, scores, None, integer)
        edges = ndtri(up_to[:-1]) if discrete else None
        return cls(knots, scores, edges, integer)

    @property
    def log_slopes(self):
        """log g' on each segment between consecutive knots (K - 1 values)."""
        return np.log(np.diff(self.scores) / np.diff(self.knots))

    def segments(self, scores):
        """The segment index of each normal score (the outer segments carry on
        beyond the first and last knot)."""
        found = np.searchsorted(self.scores, scores, side="right") - 1
        return np.clip(found, 0, len(self.knots) - 2)

    def to_scores(self, x):
        """g(x) for an array of values (NaN stays NaN)."""
        x = np.asarray(x, dtype=np.float64)
        segment = np.clip(
            np.searchsorted(self.knots, x, side="right") - 1, 0, len(self.knots) - 2
        )
        slope = np.exp(self.log_slopes)[segment]
        return self.scores[segment] + (x - self.knots[segment]) * slope

    def to_values(self, scores):
        """The column's values for normal scores (the inverse of ``to_scores``
        within the training range; a discrete column's knot)."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.edges is not None:
            return self.knots[np.searchsorted(self.edges, scores, side="left")]
        values = np.interp(scores, self.scores, self.knots)
        return np.round(values) if self.integer else values

    def score_range(self, low, high, name):
        """The scores that decode into [low, high]: for a discrete column, the
        probability intervals of the knots it holds."""
        if self.edges is None:
            return tuple(float(v) for v in self.to_scores(np.array([low, high])))
        inside = np.flatnonzero((self.knots >= low) & (self.knots <= high))
        if not len(inside):
            raise ValueError(
                f"given[{name!r}] = ({low:g}, {high:g}) holds none of the values "
                "the column took in training, the only ones the model generates "
                "for it."
            )
        bounds = np.concatenate([[-np.inf], self.edges, [np.inf]])
        return float(bounds[inside[0]]), float(bounds[inside[-1] + 1])

    def mean_log_jacobian(self, values):
        """The mean of log |dx/dg| = -log g'(x) over training ``values``."""
        scores = self.to_scores(values)
        return float(-self.log_slopes[self.segments(scores)].mean())

    def probabilities(self):
        """Each knot's share of the training rows (a discrete column's)."""
        bounds = np.concatenate([[0.0], ndtr(self.edges), [1.0]])
        return np.diff(bounds)
