"""Sampling from the fitted latent mixture (``sampling="mixture"``)."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from skvae import VAETransformer
from skvae._mixture import GaussianMixture, fit_mixture

FAST = dict(hidden_layer_sizes=(32,), max_iter=30, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(**{**FAST, **params}).fit(X)


def test_the_mixture_recovers_separated_components():
    rng = np.random.RandomState(0)
    codes = np.concatenate(
        [
            rng.standard_normal((700, 2)) * 0.3 + [4.0, 0.0],
            rng.standard_normal((300, 2)) * [1.0, 0.2] - [4.0, 0.0],
        ]
    )
    mixture = fit_mixture(codes, n_components=2, seed=0)
    order = np.argsort(mixture.means[:, 0])
    np.testing.assert_allclose(mixture.weights[order], [0.3, 0.7], atol=0.02)
    np.testing.assert_allclose(
        mixture.means[order], [[-4.0, 0.0], [4.0, 0.0]], atol=0.15
    )
    covariances = mixture.cholesky @ np.swapaxes(mixture.cholesky, 1, 2)
    np.testing.assert_allclose(
        np.diagonal(covariances[order], axis1=1, axis2=2),
        [[1.0, 0.04], [0.09, 0.09]],
        rtol=0.2,
    )
    drawn = mixture.sample(20_000, seed=1)
    assert drawn.dtype == np.float32
    assert abs((drawn[:, 0] < 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(drawn, mixture.sample(20_000, seed=1))


def test_the_mixture_survives_repeated_and_constant_codes():
    codes = np.zeros((50, 3))
    codes[:10] = 1.0
    mixture = fit_mixture(codes, n_components=10, seed=0)
    assert np.isfinite(mixture.sample(100, seed=0)).all()
    single = fit_mixture(np.ones((1, 2)), n_components=10, seed=0)
    assert isinstance(single, GaussianMixture) and len(single.weights) == 1


@pytest.fixture(scope="module")
def two_clusters():
    # Two tight, unequal clusters and a low beta: the codes of the training rows
    # sit far from N(0, I), which the prior's draws cannot know.
    rng = np.random.RandomState(0)
    centres = np.array([[3.0, -2.0, 0.0, 1.0], [-3.0, 2.0, 1.0, -1.0]])
    which = (rng.rand(600) < 0.8).astype(int)
    X = centres[which] + 0.1 * rng.standard_normal((600, 4))
    return X, fitted(X, beta=0.01)


def test_codes_drawn_from_the_mixture_lie_where_the_training_codes_are(
    two_clusters,
):
    X, vae = two_clusters
    codes = vae.transform(X)
    mixture = vae._model.mixture
    drawn = {
        "mixture": mixture.sample(2000, seed=0),
        "prior": np.random.RandomState(0).standard_normal((2000, 2)),
    }
    # Distance from each drawn code to the nearest training code, in units of
    # the codes' spread.
    spread = codes.std(axis=0).mean()
    gap = {
        name: np.sqrt(((z[:, None] - codes[None]) ** 2).sum(-1)).min(1).mean() / spread
        for name, z in drawn.items()
    }
    assert gap["mixture"] < 0.5 * gap["prior"], gap


def test_sample_draws_its_codes_from_the_mixture(two_clusters):
    X, vae = two_clusters
    from_mixture = vae.sample(200, random_state=0)
    from_prior = vae.set_params(sampling="prior").sample(200, random_state=0)
    vae.set_params(sampling="mixture")
    assert not np.allclose(from_mixture, from_prior)
    # The larger cluster keeps its share of the generated rows.
    share = (X[:, 0] < 0).mean()
    assert abs((from_mixture[:, 0] < 0).mean() - share) < 0.1


def test_sampling_is_reproducible_and_saved(two_clusters):
    X, vae = two_clusters
    first = vae.sample(50, random_state=3)
    np.testing.assert_array_equal(first, vae.sample(50, random_state=3))
    assert not np.array_equal(first, vae.sample(50, random_state=4))
    for restored in (
        pickle.loads(pickle.dumps(vae)),
        sio.loads(sio.dumps(vae), trusted=sio.get_untrusted_types(data=sio.dumps(vae))),
    ):
        np.testing.assert_array_equal(restored.sample(50, random_state=3), first)
    assert all(
        name.startswith("skvae.")
        for name in sio.get_untrusted_types(data=sio.dumps(vae))
    )


def test_a_model_saved_without_a_mixture_draws_from_the_prior(two_clusters):
    X, vae = two_clusters
    state = vae.__getstate__()
    del state["_sampling_mixture"], state["sampling"]  # as saved before them
    old = VAETransformer.__new__(VAETransformer)
    old.__setstate__(state)
    assert old.sampling == "prior" and old._model.mixture is None
    expected = vae.set_params(sampling="prior").sample(20, random_state=0)
    vae.set_params(sampling="mixture")
    np.testing.assert_array_equal(old.sample(20, random_state=0), expected)
    old.set_params(sampling="mixture")  # no mixture to draw from: the prior
    np.testing.assert_array_equal(old.sample(20, random_state=0), expected)


def test_partial_fit_and_frames_get_a_mixture_too():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {"x": rng.standard_normal(200), "c": rng.choice(["a", "b"], 200)}
    )
    vae = VAETransformer(**{**FAST, "max_iter": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.partial_fit(frame)
    assert vae._model.mixture is not None
    drawn = vae.sample(30, random_state=0)
    assert list(drawn.columns) == ["x", "c"] and drawn["c"].isin(["a", "b"]).all()


def test_a_saved_mixture_that_was_altered_is_refused(two_clusters):
    _, vae = two_clusters
    state = vae.__getstate__()
    state["_sampling_mixture"]["means"] = state["_sampling_mixture"]["means"] * np.nan
    with pytest.raises(ValueError, match="damaged or was altered"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


# ------------------------------------------------------- sample(given=...)


@pytest.fixture(scope="module")
def people():
    """Age and income follow sex: the model must learn p(age | sex)."""
    rng = np.random.RandomState(0)
    n = 2000
    sex = rng.choice(["F", "M"], n, p=[0.3, 0.7])
    female = sex == "F"
    table = pd.DataFrame(
        {
            "sex": sex,
            "age": np.where(female, rng.normal(30, 4, n), rng.normal(55, 4, n)).round(),
            "income": np.where(female, rng.normal(1, 0.2, n), rng.normal(3, 0.2, n)),
        }
    )
    return table, fitted(table, max_iter=60, likelihood={"age": "quantile"})


def test_rows_given_a_label_hold_it_and_follow_its_conditional(people):
    table, vae = people
    rows, ess = vae.sample(400, random_state=0, given={"sex": "F"}, return_ess=True)
    assert (rows["sex"] == "F").all()
    assert abs(rows["age"].mean() - table.loc[table.sex == "F", "age"].mean()) < 3
    assert abs(rows["income"].mean() - 1.0) < 0.3
    assert ess > 100


def test_rows_given_a_range_hold_it_and_follow_its_conditional(people):
    _, vae = people
    rows = vae.sample(400, random_state=0, given={"income": (2.5, 3.5)})
    assert rows["income"].between(2.5, 3.5).all()
    assert (rows["sex"] == "M").mean() > 0.95
    rows = vae.sample(400, random_state=0, given={"age": (20, 35)})
    assert rows["age"].between(20, 35).all()
    # The model's own answer, by rejection: its rows that happen to meet it.
    drawn = vae.sample(20_000, random_state=1)
    met = drawn[drawn["age"].between(20, 35)]
    assert abs((rows["sex"] == "F").mean() - (met["sex"] == "F").mean()) < 0.05
    assert abs(rows["income"].mean() - met["income"].mean()) < 0.1


def test_conditional_rows_are_reproducible(people):
    _, vae = people
    first = vae.sample(10, random_state=4, given={"sex": "M", "age": (50, 60)})
    again = vae.sample(10, random_state=4, given={"sex": "M", "age": (50, 60)})
    pd.testing.assert_frame_equal(first, again)


def test_a_condition_the_model_finds_rare_is_reported(people):
    _, vae = people
    with pytest.warns(UserWarning, match=r"rare under the model \(a probability"):
        rows = vae.sample(20, random_state=0, given={"income": (20.0, 21.0)})
    assert rows["income"].between(20.0, 21.0).all()


def test_conditions_the_model_cannot_take_are_refused(people):
    _, vae = people
    cases = {
        "not a value the column held": {"sex": "X"},
        "not among the model's columns": {"height": 1.0},
        "a range is a .low, high. pair": {"sex": ("F", "M")},
        "low must not exceed high": {"age": (40, 30)},
        "cannot be read as a value": {"income": "high"},
    }
    for message, given in cases.items():
        with pytest.raises(ValueError, match=message):
            vae.sample(5, given=given)
    with pytest.raises(TypeError, match="given must be a dict"):
        vae.sample(5, given=[("sex", "F")])


def test_without_noise_rows_are_the_decoders_means(people):
    table, vae = people
    drawn = vae.sample(2000, random_state=0)
    means = vae.sample(2000, random_state=0, noise=False)
    # Same codes: the means carry no observation noise, so within a sex
    # their incomes spread less than drawn ones.
    for frame in (drawn, means):
        assert set(frame["sex"]) <= {"F", "M"}
    spread = lambda f: f.loc[f.sex == "M", "income"].std()  # noqa: E731
    assert spread(means) < 0.5 * spread(drawn)
    _, ess = vae.sample(7, random_state=0, return_ess=True)
    assert ess == 7.0


def test_the_mixture_grows_with_the_training_rows():
    from skvae._model import mixture_components

    assert [mixture_components(n) for n in (50, 10_000, 20_500, 10**7)] == [
        10,
        10,
        20,
        30,
    ]
    rng = np.random.RandomState(0)
    X = rng.standard_normal((12_000, 3))
    vae = fitted(X, max_iter=1)
    assert len(vae._model.mixture.weights) == 12


def test_conditions_work_with_the_prior_too(people):
    table, _ = people
    vae = fitted(table, max_iter=60, sampling="prior")
    rows, ess = vae.sample(200, random_state=0, given={"sex": "F"}, return_ess=True)
    assert (rows["sex"] == "F").all() and ess > 30
    assert abs(rows["income"].mean() - 1.0) < 0.3


def test_a_range_columns_values_follow_the_models_own_conditional(people):
    # The range column is drawn from the decoder's Gaussian truncated to the
    # range: its values spread within it as the model's own rows that meet it.
    _, vae = people
    rows = vae.sample(2000, random_state=0, given={"income": (0.5, 1.5)})
    drawn = vae.sample(20_000, random_state=1)
    met = drawn[drawn["income"].between(0.5, 1.5)]
    assert abs(rows["income"].mean() - met["income"].mean()) < 0.05
    assert abs(rows["income"].std() - met["income"].std()) < 0.05
