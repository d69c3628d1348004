"""
Choosing ``n_components`` with GridSearchCV
===========================================

Two ways to pick the latent dimension. Unsupervised: ``score`` is the held-out
log-likelihood bound, so ``GridSearchCV`` with no scorer keeps the size that
explains unseen rows best. Supervised: put the VAE in a ``Pipeline`` before a
classifier and search ``vaetransformer__n_components`` by accuracy.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X, y = X[:900], y[:900]
quick = dict(hidden_layer_sizes=(128, 64), max_iter=30, warmup_epochs=5, random_state=0)
sizes = [1, 2, 4, 8]

by_likelihood = GridSearchCV(
    make_pipeline(StandardScaler(), VAETransformer(**quick)),
    {"vaetransformer__n_components": sizes},
    cv=3,
).fit(X)
by_accuracy = GridSearchCV(
    make_pipeline(
        StandardScaler(), VAETransformer(**quick), LogisticRegression(max_iter=500)
    ),
    {"vaetransformer__n_components": sizes},
    cv=3,
).fit(X, y)

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.plot(sizes, by_likelihood.cv_results_["mean_test_score"], "o-")
left.set(xlabel="n_components", ylabel="held-out log-likelihood bound (nats)")
right.plot(sizes, by_accuracy.cv_results_["mean_test_score"], "o-")
right.set(xlabel="n_components", ylabel="held-out accuracy")
fig.tight_layout()
plt.show()
print("by likelihood:", by_likelihood.best_params_)
print("by accuracy:", by_accuracy.best_params_)
