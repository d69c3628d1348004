"""
The ELBO during training
========================

``history_`` records, for every epoch, the two terms of the ELBO: the
reconstruction term -E_q[log p(x|z)] and KL(q(z|x) || p(z)), and the weight of the
KL term, which ramps from 0 to ``beta`` over ``warmup_epochs``. With
``early_stopping=True`` the held-out ELBO of a validation split is recorded too,
and the best epoch's weights are kept.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits

from skvae import VAETransformer

X, _ = load_digits(return_X_y=True)
vae = VAETransformer(
    n_components=4, max_iter=80, early_stopping=True, random_state=0
).fit(X)
history = pd.DataFrame(vae.history_).set_index("epoch")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
history[["reconstruction", "kl"]].plot(ax=left)
left.set(ylabel="nats per row", title="terms of the ELBO")
(-history["loss"]).plot(ax=right, label="training ELBO")
history["validation_score"].plot(ax=right, label="validation ELBO")
warmup = vae.training_plan_["warmup_epochs"]  # "auto" resolved
right.axvline(warmup, color="k", linestyle=":", label="end of warm-up")
right.set(ylabel="nats per row", title="ELBO")
right.legend()
fig.tight_layout()
plt.show()
print(f"{vae.n_iter_} epochs; best validation ELBO {vae.best_validation_score_:.1f}")
