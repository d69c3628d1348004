"""
Generating new digits with ``sample``
=====================================

A VAE is a generative model: ``sample`` draws codes z from a Gaussian mixture
fitted to the training digits' codes (``sampling="mixture"``, the default; the
prior N(0, I) with ``sampling="prior"``) and then pixels from the decoder's
distribution p(x|z). Decoding codes with ``inverse_transform`` gives the mean
image instead of a noisy draw.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skvae import VAETransformer

X, _ = load_digits(return_X_y=True)
vae = VAETransformer(n_components=8, max_iter=60, random_state=0).fit(X)

# Means of p(x|z) for codes drawn from the prior: the model's typical digits.
Z = np.random.RandomState(0).randn(24, 8)
means = vae.inverse_transform(Z)
draws = vae.sample(24, random_state=0)  # with the per-pixel noise of p(x|z)

fig, axes = plt.subplots(4, 12, figsize=(12, 4.4))
for ax, image in zip(axes.ravel(), np.vstack([means, draws]), strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.axis("off")
axes[0, 0].set_title("means", loc="left")
axes[2, 0].set_title("draws", loc="left")
plt.show()
