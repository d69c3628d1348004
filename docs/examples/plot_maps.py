"""
Maps of new rows: the encoder's means, placed against the training codes
========================================================================

A map is read for its neighbourhoods, and it is most often asked to place rows
it was not fitted on. Each panel fits a 2-D model on 70 % of the digits and
draws the held-out 30 % (large points) over the training codes (small, faint
points); the title gives the accuracy of a 5-nearest-neighbour classifier of
the training codes on the held-out ones.

- PCA: the two directions of largest variance.
- skvae's defaults: ``transform`` returns the encoder's posterior means.
- ``placement="neighbors"``: the same model, but ``transform`` moves each new
  row's code to match its nearest training rows (openTSNE's ``transform``).
- The map setting: a neighbour-preserving t-SNE term in training
  (``neighbor_weight``) with denoising and a lighter KL weight, and the
  placement.

The fits here are shortened to 60 epochs to keep the page fast;
``benchmarks/maps.py`` measures the full defaults beside UMAP and openTSNE.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

short = dict(n_components=2, max_iter=60, random_state=0)
models = {
    "PCA": PCA(n_components=2),
    "skvae defaults": VAETransformer(**short),
    'placement="neighbors"': VAETransformer(placement="neighbors", **short),
    "map setting": VAETransformer(
        neighbor_weight=16,
        input_noise=0.6,
        beta=0.25,
        placement="neighbors",
        **short,
    ),
}

fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, (name, model) in zip(axes, models.items(), strict=True):
    model.fit(X_train)
    Z_train, Z_test = model.transform(X_train), model.transform(X_test)
    knn = KNeighborsClassifier(5).fit(Z_train, y_train).score(Z_test, y_test)
    ax.scatter(*Z_train.T, c=y_train, cmap="tab10", s=3, alpha=0.25)
    points = ax.scatter(*Z_test.T, c=y_test, cmap="tab10", s=12)
    # A few far-out codes would squeeze the rest: frame the central 99 %.
    low, high = np.percentile(Z_train, [0.5, 99.5], axis=0)
    margin = 0.05 * (high - low)
    ax.set_xlim(low[0] - margin[0], high[0] + margin[0])
    ax.set_ylim(low[1] - margin[1], high[1] + margin[1])
    ax.set_title(f"{name}\nheld-out 5-NN {knn:.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(points, ax=axes, label="digit")
plt.show()
