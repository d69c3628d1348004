"""
2-D latent map of the digits, next to PCA's
===========================================

Both models reduce the 64 pixels of scikit-learn's digits to two numbers. PCA
keeps the two directions of largest variance; the VAE learns a non-linear encoder
whose posterior means (``transform``) separate the digit classes far better.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

vae = VAETransformer(n_components=2, max_iter=60, random_state=0)
Z_vae = vae.fit_transform(X)
Z_pca = PCA(n_components=2).fit_transform(X)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, Z, title in [(axes[0], Z_pca, "PCA"), (axes[1], Z_vae, "VAETransformer")]:
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=6)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(points, ax=axes, label="digit")
plt.show()
