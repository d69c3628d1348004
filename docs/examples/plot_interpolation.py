"""
Interpolating in the latent space
=================================

Encode two digits, walk in a straight line between their codes, and decode each
step. Because the prior ties the latent space together, the path goes through
plausible digits rather than a cross-fade of pixels.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
vae = VAETransformer(n_components=4, max_iter=60, random_state=0).fit(X)

start, end = vae.transform(X[[np.flatnonzero(y == 1)[0], np.flatnonzero(y == 7)[0]]])
steps = np.linspace(0, 1, 10)[:, None]
path = vae.inverse_transform((1 - steps) * start + steps * end)
fade = (1 - steps) * X[np.flatnonzero(y == 1)[0]] + steps * X[np.flatnonzero(y == 7)[0]]

fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for row, images, title in [(0, path, "latent path"), (1, fade, "pixel fade")]:
    for ax, image in zip(axes[row], images, strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r")
        ax.axis("off")
    axes[row, 0].set_title(title, loc="left")
plt.show()
