"""
A mixed table with missing values: the Palmer penguins
======================================================

The penguins table has labels (species, island, sex), measurements and a year,
with holes in several columns. ``VAETransformer`` takes it as it is: each column
gets its own likelihood, missing entries drop out of the ELBO, and the same model
embeds the rows, fills the holes and generates new rows with the table's dtypes.
(Needs ``pip install palmerpenguins``.)
"""

import matplotlib.pyplot as plt
import numpy as np
from palmerpenguins import load_penguins

from skvae import VAETransformer

penguins = load_penguins()
# Hide 30 % of the body masses as well, to check the imputation against the truth.
hidden = np.random.RandomState(0).rand(len(penguins)) < 0.3
holey = penguins.copy()
holey.loc[hidden, "body_mass_g"] = np.nan

vae = VAETransformer(n_components=2, max_iter=300, random_state=0).fit(holey)
print(vae.schema_)

# %%
# The embedding: rows with holes get a code too.
Z = vae.transform(holey)
for species in penguins["species"].unique():
    rows = (penguins["species"] == species).to_numpy()
    plt.scatter(Z[rows, 0], Z[rows, 1], s=10, label=species)
plt.legend()
plt.title("2-D codes of the penguins")
plt.show()

# %%
# Imputation: the hidden body masses, filled in by a model that never saw them.
filled = vae.impute(holey)
truth = penguins.loc[hidden, "body_mass_g"]
plt.scatter(truth, filled.loc[hidden, "body_mass_g"], s=10)
plt.plot([2500, 6500], [2500, 6500], "k--")
plt.xlabel("true body mass (g)")
plt.ylabel("imputed body mass (g)")
plt.show()

# %%
# Synthetic rows: a DataFrame with the same columns, dtypes and levels.
print(vae.sample(5, random_state=0))
