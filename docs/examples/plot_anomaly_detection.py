"""
Anomaly detection with ``score_samples``
========================================

``score_samples`` is each row's log-likelihood bound: rows the model finds
unlikely are candidates for anomalies. Train on digits, then score held-out
digits and the same digits with a block of pixels scrambled.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skvae import VAETransformer

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
vae = VAETransformer(n_components=8, max_iter=60, random_state=0).fit(X_train)

rng = np.random.RandomState(0)
corrupted = X_test.copy()
corrupted[:, 20:36] = rng.uniform(0, 16, size=(len(X_test), 16))

normal_scores = vae.score_samples(X_test)
odd_scores = vae.score_samples(corrupted)
threshold = np.quantile(vae.score_samples(X_train), 0.01)  # 1 % false alarms

plt.hist(normal_scores, bins=40, alpha=0.6, label="held-out digits")
plt.hist(odd_scores, bins=40, alpha=0.6, label="scrambled digits")
plt.axvline(threshold, color="k", linestyle="--", label="1 % of training rows")
plt.xlabel("score_samples (nats)")
plt.legend()
plt.show()
print(
    f"flagged: {np.mean(odd_scores < threshold):.0%} of scrambled digits, "
    f"{np.mean(normal_scores < threshold):.0%} of normal ones"
)
