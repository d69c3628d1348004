"""A Gaussian mixture over the latent space, fitted to the training rows' codes.

A VAE trained with the prior N(0, I) does not fill that prior: the codes of the
training rows (their aggregate posterior, the average of q(z|x) over the rows)
leave holes and crowd elsewhere, and the decoder has never seen the holes. Rows
generated from N(0, I) then fall where no training row did. ``sample`` draws its
codes from a mixture fitted to draws of z ~ q(z|x) of the training rows instead
(ex-post density estimation: Ghosh et al., "From Variational to Deterministic
Autoencoders", ICLR 2020). Training and ``score_samples`` keep N(0, I).

numpy only: full covariances, k-means++ starts, EM in log space.
"""

from dataclasses import dataclass

import numpy as np

# Added to each covariance's diagonal, relative to the codes' overall variance:
# keeps a component that collapses onto a few codes invertible.
_COVARIANCE_FLOOR = 1e-4


@dataclass
class GaussianMixture:
    """Weights, means and Cholesky factors of the covariances of K components."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    cholesky: np.ndarray  # (K, d, d), lower triangular

    def sample(self, n_samples, seed):
        """``n_samples`` codes, float32, reproducible from ``seed``."""
        rng = np.random.RandomState(seed)
        component = rng.choice(len(self.weights), size=n_samples, p=self.weights)
        noise = rng.standard_normal((n_samples, self.means.shape[1]))
        codes = self.means[component] + np.einsum(
            "nij,nj->ni", self.cholesky[component], noise
        )
        return codes.astype(np.float32)

    def log_prob(self, codes):
        """The mixture's log-density at each code."""
        per_component = _component_log_prob(np.asarray(codes, np.float64), self)
        return np.logaddexp.reduce(per_component, axis=1)

    def state(self):
        """Plain arrays, for a saved model."""
        return {
            "weights": self.weights,
            "means": self.means,
            "cholesky": self.cholesky,
        }

    @classmethod
    def from_state(cls, state):
        return cls(state["weights"], state["means"], state["cholesky"])


def fit_mixture(codes, n_components, seed, max_iter=50, tol=1e-3):
    """The ``GaussianMixture`` of ``n_components`` fitted to ``codes`` by EM.

    Stops once the mean log-likelihood per code improves by less than ``tol``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    n_components = max(1, min(n_components, len(codes)))
    rng = np.random.RandomState(seed)
    floor = _COVARIANCE_FLOOR * max(float(codes.var(axis=0).mean()), 1e-12)
    resp = _kmeans_plus_plus_responsibilities(codes, n_components, rng)
    previous = -np.inf
    for _ in range(max_iter):
        mixture = _maximisation(codes, resp, floor)
        log_prob = _component_log_prob(codes, mixture)
        total = np.logaddexp.reduce(log_prob, axis=1)
        resp = np.exp(log_prob - total[:, None])
        current = float(total.mean())
        if current - previous < tol:
            break
        previous = current
    return _maximisation(codes, resp, floor)


def _kmeans_plus_plus_responsibilities(codes, n_components, rng):
    """Hard responsibilities from k-means++ seeds (nearest seed per code)."""
    centres = [codes[rng.randint(len(codes))]]
    closest = ((codes - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, n_components):
        total = closest.sum()
        pick = (
            rng.randint(len(codes))
            if total <= 0
            else rng.choice(len(codes), p=closest / total)
        )
        centres.append(codes[pick])
        closest = np.minimum(closest, ((codes - codes[pick]) ** 2).sum(axis=1))
    distances = ((codes[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=2)
    resp = np.zeros((len(codes), n_components))
    resp[np.arange(len(codes)), distances.argmin(axis=1)] = 1.0
    return resp


def _maximisation(codes, resp, floor):
    counts = resp.sum(axis=0) + 1e-10
    means = (resp.T @ codes) / counts[:, None]
    d = codes.shape[1]
    cholesky = np.empty((len(counts), d, d))
    for k in range(len(counts)):
        centred = codes - means[k]
        # (centred^T diag(resp) centred): one matrix product, no weighted copy.
        covariance = np.dot(centred.T * resp[:, k], centred) / counts[k]
        covariance[np.diag_indices(d)] += floor
        cholesky[k] = np.linalg.cholesky(covariance)
    return GaussianMixture(counts / counts.sum(), means, cholesky)


def _component_log_prob(codes, mixture):
    """log(weight_k) + log N(code | mean_k, cov_k), shape (n, K)."""
    n, d = codes.shape
    out = np.empty((n, len(mixture.weights)))
    for k, (weight, mean, factor) in enumerate(
        zip(mixture.weights, mixture.means, mixture.cholesky, strict=True)
    ):
        # y = L^-1 (x - mean), as one matrix product with the small inverse: the
        # squared norm of y is the Mahalanobis term.
        inverse = np.linalg.inv(factor)  # (d x d: cheaper than a solve per code)
        y = (codes - mean) @ inverse.T
        log_det = 2.0 * np.log(np.diag(factor)).sum()
        out[:, k] = np.log(weight) - 0.5 * (
            d * np.log(2 * np.pi) + log_det + np.einsum("ij,ij->i", y, y)
        )
    return out
