"""
Comparing with PCA, KernelPCA and UMAP
======================================

Four reductions of a Swiss roll embedded in 20 dimensions, coloured by the
position along the roll. UMAP is shown when ``umap-learn`` is installed. The
benchmarks in ``benchmarks/quality.py`` measure the same comparison in numbers.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_swiss_roll
from sklearn.decomposition import PCA, KernelPCA

from skvae import VAETransformer

X3, position = make_swiss_roll(1500, noise=0.2, random_state=0)
rotation = np.linalg.qr(np.random.RandomState(0).randn(20, 20))[0][:3]
X = X3 @ rotation  # the roll, rotated into 20 dimensions

methods = {
    "PCA": PCA(n_components=2),
    "KernelPCA (RBF)": KernelPCA(n_components=2, kernel="rbf", gamma=0.01),
    "VAETransformer": VAETransformer(n_components=2, max_iter=60, random_state=0),
}
try:
    from umap import UMAP

    methods["UMAP"] = UMAP(n_components=2, random_state=0)
except ImportError:
    pass

fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2))
for ax, (name, method) in zip(axes, methods.items(), strict=True):
    Z = method.fit_transform(X)
    ax.scatter(Z[:, 0], Z[:, 1], c=position, cmap="viridis", s=4)
    ax.set_title(name)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
