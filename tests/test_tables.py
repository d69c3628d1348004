"""Mixed column types and missing values: the table schema end to end."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skvae import VAEImputer, VAETransformer

FAST = dict(
    hidden_layer_sizes=(32, 16),
    max_iter=20,
    batch_size=32,
    warmup_epochs=0,
    random_state=0,
)


def fitted(X, **params):
    return VAETransformer(**{**FAST, **params}).fit(X)


@pytest.fixture
def table():
    """Seven column types driven by one latent position t (so columns predict
    each other), plus a column of pure noise."""
    rng = np.random.RandomState(0)
    n = 240
    t = rng.uniform(-2, 2, n)
    return pd.DataFrame(
        {
            "length": 10 + 3 * t + 0.2 * rng.randn(n),
            "weight": np.round(50 + 20 * np.sin(t) + rng.randn(n)).astype(np.int64),
            "visits": rng.poisson(np.exp(1 + 0.5 * t)),
            "member": t > 0,
            "colour": pd.Categorical(
                np.array(["blue", "green", "red"])[np.digitize(t, [-0.7, 0.7])]
            ),
            "size": pd.Series(np.where(t > 0.3, "large", "small"), dtype=object),
            "shop": pd.Series(
                np.array(["east", "north", "south", "west"])[rng.randint(4, size=n)],
                dtype=object,
            ),
        }
    )


def with_holes(frame, rate, seed=0):
    """``frame`` with ``rate`` of its entries missing completely at random."""
    holes = np.random.RandomState(seed).rand(*frame.shape) < rate
    return frame.mask(holes), holes


# ------------------------------------------------------------------ the schema


def test_schema_picks_a_likelihood_per_column(table):
    schema = fitted(table).schema_.to_frame()
    assert schema["likelihood"].to_dict() == {
        "length": "gaussian",
        "weight": "gaussian",
        "visits": "gaussian",
        "member": "bernoulli",
        "colour": "categorical",
        "size": "bernoulli",
        "shop": "categorical",
    }
    assert schema.loc["colour", "categories"] == ["blue", "green", "red"]
    assert schema.loc["size", "categories"] == ["large", "small"]
    assert schema.loc["length", "categories"] is None
    assert schema["missing_rate"].eq(0).all()


def test_likelihood_override_by_column_name(table):
    vae = fitted(table, likelihood={"visits": "poisson", "size": "categorical"})
    kinds = vae.schema_.to_frame()["likelihood"]
    assert kinds["visits"] == "poisson"
    assert kinds["size"] == "categorical"
    assert kinds["length"] == "gaussian"  # the others stay automatic
    counts = vae.sample(50, random_state=0)["visits"]
    assert counts.dtype == np.int64 and (counts >= 0).all()


def test_likelihood_override_by_position_for_arrays(X_binary):
    X = np.column_stack([X_binary[:, :3], np.arange(90.0)])
    vae = fitted(X, likelihood={0: "bernoulli", 1: "bernoulli", 2: "categorical"})
    assert list(vae.schema_.to_frame()["likelihood"]) == [
        "bernoulli",
        "bernoulli",
        "categorical",
        "gaussian",
    ]
    X_back = vae.inverse_transform(vae.transform(X))
    assert isinstance(X_back, np.ndarray) and X_back.shape == X.shape
    assert set(np.unique(X_back[:, 2])) <= {0.0, 1.0}  # a level seen in training


@pytest.mark.parametrize(
    "likelihood, message",
    [
        ({"shop": "gaussian"}, r"'shop' holds labels .* needs numbers"),
        ({"length": "poisson"}, "'length' .* non-negative integer counts"),
        ({"shop": "bernoulli"}, "'shop' .* 4 levels"),
        ({"length": "bernoulli"}, r"'length' .* values in \[0, 1\]"),
        ({"height": "gaussian"}, r"columns that X does not have: \['height'\]"),
        ({"length": "student_t"}, "unknown kinds"),
    ],
)
def test_impossible_likelihoods_are_refused(table, likelihood, message):
    vae = VAETransformer(likelihood=likelihood, **FAST)
    with pytest.raises(ValueError, match=message):
        vae.fit(table)
    with pytest.raises(NotFittedError):
        vae.transform(table)


# ------------------------------------------------------------ DataFrame out


def test_inverse_transform_and_sample_keep_columns_dtypes_and_levels(table):
    vae = fitted(table, likelihood={"visits": "poisson"})
    for out in (vae.inverse_transform(vae.transform(table)), vae.sample(300, 0)):
        assert list(out.columns) == list(table.columns)
        assert out.dtypes.to_dict() == table.dtypes.to_dict()
        assert set(out["colour"].cat.categories) == {"blue", "green", "red"}
        assert set(out["size"]) <= {"large", "small"}
        assert set(out["shop"]) <= {"east", "north", "south", "west"}
        assert out.notna().all().all()


def test_sample_draws_levels_where_inverse_transform_takes_the_mode(table):
    vae = fitted(table, max_iter=5)
    decoded = vae.inverse_transform(np.zeros((200, 2)))
    assert decoded["shop"].nunique() == 1  # one code, one most probable level
    assert vae.sample(200, random_state=0)["shop"].nunique() > 1


def test_labels_and_booleans_are_reconstructed(table):
    # Every column but "shop" is a function of one position: a 2-D code holds it.
    vae = fitted(table, max_iter=150)
    back = vae.inverse_transform(vae.transform(table))
    assert (back["colour"] == table["colour"]).mean() > 0.85
    assert (back["member"] == table["member"]).mean() > 0.85
    assert (back["size"] == table["size"]).mean() > 0.85
    assert np.corrcoef(back["length"], table["length"])[0, 1] > 0.9


def test_numpy_in_numpy_out(X_small):
    vae = fitted(X_small)
    assert isinstance(vae.inverse_transform(vae.transform(X_small)), np.ndarray)
    assert isinstance(vae.sample(3, random_state=0), np.ndarray)


def test_numeric_frame_gives_frames_back_and_keeps_float32(X_small):
    frame = pd.DataFrame(X_small.astype(np.float32), columns=list("abcde"))
    vae = fitted(frame)
    assert vae.transform(frame).dtype == np.float32
    back = vae.inverse_transform(vae.transform(frame))
    assert list(back.columns) == list("abcde")
    assert (back.dtypes == np.float32).all()


def test_pickle_round_trip_keeps_the_schema(table):
    vae = fitted(table)
    twin = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(twin.transform(table), vae.transform(table))
    pd.testing.assert_frame_equal(twin.sample(5, 1), vae.sample(5, 1))


# ------------------------------------------------------------ unseen levels


def test_unseen_level_is_an_error_that_names_it(table):
    vae = fitted(table)
    new = table.head(3).copy()
    new["shop"] = ["east", "harbour", "west"]
    with pytest.raises(ValueError, match="'shop' has the value 'harbour'.*missing"):
        vae.transform(new)
    with pytest.raises(ValueError, match="harbour"):
        vae.score_samples(new)


def test_unseen_level_can_count_as_missing(table):
    vae = fitted(table, handle_unknown="missing")
    new = table.head(3).copy()
    new["shop"] = ["east", "harbour", "west"]
    as_missing = new.assign(shop=["east", None, "west"])
    np.testing.assert_array_equal(vae.transform(new), vae.transform(as_missing))
    assert np.isfinite(vae.score_samples(new)).all()


# ------------------------------------------------------------ missing values


def test_missing_values_in_every_column_type(table):
    holey = table.astype({"weight": "Int64", "member": "boolean"})
    holey.loc[0, "length"] = np.nan
    holey.loc[1, "weight"] = pd.NA
    holey.loc[2, "member"] = pd.NA
    holey.loc[3, "colour"] = np.nan
    holey.loc[4, "size"] = None
    holey.loc[5, ["length", "colour", "shop"]] = [np.nan, np.nan, None]
    vae = fitted(holey)
    assert vae.schema_.mask_inputs
    # The encoder reads one observed-flag per column next to the values (the
    # categorical columns one-hot: colour has 3 levels, shop 4).
    encoder_width = vae.module_.encoder.net[0].in_features
    assert encoder_width == 5 + 3 + 4 + holey.shape[1]
    assert np.isfinite(vae.transform(holey)).all()
    assert np.isfinite(vae.score_samples(holey)).all()
    assert vae.sample(3, random_state=0).dtypes.to_dict() == holey.dtypes.to_dict()


def test_a_row_with_nothing_observed_encodes_to_a_finite_code(table):
    vae = fitted(with_holes(table, 0.3)[0])
    empty = table.head(1).mask(np.ones((1, table.shape[1]), bool))
    Z, Z_std = vae.transform(empty, return_std=True)
    assert np.isfinite(Z).all() and np.isfinite(Z_std).all()
    # Nothing observed: log p(nothing) = 0, up to the bound's Monte Carlo slack.
    assert vae.score_samples(empty)[0] == pytest.approx(0.0, abs=0.1)


def test_model_trained_without_holes_still_encodes_rows_with_holes(X_small):
    vae = fitted(X_small)
    X = X_small[:20].copy()
    X[::2, 1] = np.nan
    assert not vae.schema_.mask_inputs
    assert np.isfinite(vae.transform(X)).all()
    assert np.isfinite(vae.score_samples(X)).all()


def test_missing_entries_drop_out_of_the_likelihood_and_its_jacobian(X_small):
    # Scaling a column by c scales its density by 1/c for each row where it is
    # observed, and not at all where it is missing.
    X = X_small.copy()
    X[::3, 0] = np.nan
    scaled = X.copy()
    scaled[:, 0] *= 10.0
    first = fitted(X).score_samples(X)
    second = fitted(scaled).score_samples(scaled)
    observed = ~np.isnan(X[:, 0])
    np.testing.assert_allclose(second, first - observed * np.log(10.0), atol=1e-4)


def test_training_with_30_percent_missing_still_learns(table):
    holey, holes = with_holes(table, 0.3, seed=1)
    vae = fitted(holey, max_iter=150)
    filled = vae.impute(holey)
    assert filled.notna().all().all()
    # Observed entries come back unchanged.
    pd.testing.assert_frame_equal(filled.mask(holes), holey, check_dtype=False)
    length_holes = holes[:, 0]
    truth = table["length"][length_holes]
    mean_error = np.sqrt(((holey["length"].mean() - truth) ** 2).mean())
    vae_error = np.sqrt(((filled["length"][length_holes] - truth) ** 2).mean())
    assert vae_error < 0.5 * mean_error
    colour_holes = holes[:, 4]
    accuracy = (filled["colour"][colour_holes] == table["colour"][colour_holes]).mean()
    majority = table["colour"][colour_holes].value_counts(normalize=True).max()
    assert accuracy > majority + 0.2


# ------------------------------------------------------------ the imputer


def test_imputer_fills_holes_and_keeps_the_rest(table):
    holey, holes = with_holes(table, 0.2)
    imputer = VAEImputer(VAETransformer(**FAST)).fit(holey)
    filled = imputer.transform(holey)
    assert isinstance(filled, pd.DataFrame)
    assert filled.notna().all().all()
    pd.testing.assert_frame_equal(filled.mask(holes), holey, check_dtype=False)
    assert list(imputer.get_feature_names_out()) == list(table.columns)


def test_imputer_on_arrays_and_in_a_pipeline(X_small):
    rng = np.random.RandomState(0)
    X = X_small.copy()
    X[rng.rand(*X.shape) < 0.2] = np.nan
    y = X_small[:, 0] > 0
    pipe = make_pipeline(
        VAEImputer(VAETransformer(**FAST)), LogisticRegression(max_iter=1000)
    )
    assert pipe.fit(X, y).score(X, y) > 0.8
    filled = pipe[0].transform(X)
    assert isinstance(filled, np.ndarray) and not np.isnan(filled).any()
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(filled[observed], X[observed])


def test_imputer_parameters_are_searchable():
    imputer = VAEImputer(VAETransformer(n_components=2))
    imputer.set_params(estimator__n_components=3)
    assert imputer.estimator.n_components == 3


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "column, message",
    [
        (pd.date_range("2024-01-01", periods=240), "'when' has dtype datetime.*days"),
        (pd.Series(np.ones(240) * (1 + 2j)), "'when' has dtype complex.*imaginary"),
        (pd.Series([[1, 2]] * 240), "'when' holds nested objects"),
        (pd.Series([np.nan] * 240), "'when' has no observed values"),
        (pd.Series([np.inf] + [1.0] * 239), "'when' holds infinite values"),
    ],
)
def test_unusable_columns_are_named(table, column, message):
    vae = VAETransformer(**FAST)
    with pytest.raises(ValueError, match=message):
        vae.fit(table.assign(when=column))
    with pytest.raises(NotFittedError):
        vae.transform(table)


def test_all_missing_column_in_an_array_is_named(X_small):
    X = X_small.copy()
    X[:, 3] = np.nan
    with pytest.raises(ValueError, match="Column 3 has no observed values"):
        VAETransformer(**FAST).fit(X)


def test_constant_and_single_level_columns_are_handled(table):
    vae = fitted(table.assign(unit="kg", offset=7.0), max_iter=5)
    kinds = vae.schema_.to_frame()["likelihood"]
    assert kinds["unit"] == "categorical" and kinds["offset"] == "gaussian"
    out = vae.sample(20, random_state=0)
    assert (out["unit"] == "kg").all()
    np.testing.assert_allclose(out["offset"], 7.0, atol=1e-6 + 0.1)


def test_changed_column_dtype_is_an_error(table):
    vae = fitted(table)
    with pytest.raises(ValueError, match="'length' had dtype float64 .* now"):
        vae.transform(table.assign(length=table["length"].astype(str)))
    with pytest.raises(ValueError, match="'shop' had dtype object .* now"):
        vae.transform(table.assign(shop=np.arange(240.0)))
    with pytest.raises(ValueError, match="pass a DataFrame with the same columns"):
        vae.transform(table.select_dtypes("number").to_numpy())


# ------------------------------------------------------------ composition


def test_mixed_frame_in_column_transformer_with_pandas_output(table):
    pre = ColumnTransformer(
        [("vae", VAETransformer(**FAST), ["length", "colour", "member", "size"])],
        remainder="drop",
    ).set_output(transform="pandas")
    Z = pre.fit_transform(table)
    assert list(Z.columns) == ["vae__vaetransformer0", "vae__vaetransformer1"]
    vae = fitted(table).set_output(transform="pandas")
    assert list(vae.transform(table).columns) == ["vaetransformer0", "vaetransformer1"]


def test_transform_refuses_infinity_in_a_float_array(X_small):
    vae = fitted(X_small, max_iter=2)
    X = X_small[:3].copy()
    X[1, 2] = -np.inf
    for method in (vae.transform, vae.score_samples, vae.impute):
        with pytest.raises(ValueError, match="Input X contains infinity"):
            method(X)
    with pytest.raises(ValueError, match="X has 4 features"):
        vae.transform(X_small[:1, :4])  # the fast path still checks the width


def test_infinity_is_refused_wherever_the_rows_are_checked(X_small):
    # On a GPU, inference leaves the search for infinities to the device, batch
    # by batch; training and continued training always check on the host.
    import torch

    from skvae._data import _Standardiser

    vae = fitted(X_small, max_iter=2)
    X = np.repeat(X_small, 40, axis=0)  # 12,000 rows: past the few-row path
    X[-1, 0] = np.inf  # in the last batch only
    for method in (vae.transform, vae.score_samples, vae.impute):
        with pytest.raises(ValueError, match="Input X contains infinity"):
            method(X)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        vae.partial_fit(X)
    standardise = _Standardiser(vae.schema_, torch.device("cpu"), refuse_infinity=True)
    batch = torch.from_numpy(X[-3:])
    with pytest.raises(ValueError, match="Input X contains infinity"):
        standardise(batch)
    assert torch.isfinite(standardise(batch[:2]).targets).all()
    # The host pass is skipped exactly where the rows are checked on a GPU.
    on_gpu = vae._model.device.type == "cuda"
    assert vae._model.checks_infinity_on_device(X) == on_gpu


def test_mixed_frame_with_holes_in_a_pipeline_and_a_search(table):
    from sklearn.model_selection import GridSearchCV

    holey, _ = with_holes(table.drop(columns="member"), 0.1)
    pipe = make_pipeline(VAETransformer(**FAST), LogisticRegression())
    search = GridSearchCV(pipe, {"vaetransformer__n_components": [1, 2]}, cv=2)
    search.fit(holey, table["member"])
    assert search.best_estimator_.score(holey, table["member"]) > 0.8


# ------------------------------------------------------------ review regressions


def test_small_integer_columns_decode_within_their_dtype():
    from sklearn.datasets import load_digits

    pixels = pd.DataFrame(load_digits().data[:200, :16].astype(np.uint8))
    pixels.columns = [f"p{j}" for j in range(16)]
    vae = fitted(pixels, max_iter=3)
    for out in (vae.inverse_transform(vae.transform(pixels)), vae.sample(50, 0)):
        assert (out.dtypes == np.uint8).all()
        assert out.to_numpy().max() <= 255


def test_early_stopping_with_a_label_only_in_the_validation_rows(table):
    rare = table.assign(shop=["harbour"] + list(table["shop"][1:]))
    for seed in range(4):  # the rare row lands in the validation split for some
        vae = fitted(rare, early_stopping=True, validation_fraction=0.5,
                     random_state=seed, max_iter=3)  # fmt: skip
        assert np.isfinite(vae.transform(rare.iloc[1:])).all()


def test_partial_fit_does_not_freeze_a_column_constant_in_the_first_chunk(X_small):
    X = X_small.copy()
    X[:50, 0] = 0.0
    vae = VAETransformer(**FAST)
    vae.partial_fit(X[:50])
    for _ in range(20):
        vae.partial_fit(X)
    assert not vae.schema_.columns[0].constant
    assert np.ptp(vae.inverse_transform(vae.transform(X))[:, 0]) > 1.0


def test_impute_fills_unseen_labels_read_as_missing(table):
    vae = fitted(table, handle_unknown="missing")
    new = table.head(4).copy()
    new["shop"] = pd.Series(["east", "harbour", None, "west"], dtype=object)
    filled = vae.impute(new)
    assert set(filled["shop"]) <= {"east", "north", "south", "west"}
    assert filled.loc[[0, 3], "shop"].tolist() == ["east", "west"]


def test_impute_returns_training_dtypes_for_every_column(table):
    vae = fitted(table)
    as_floats = table.head(5).astype({"weight": float})
    as_floats.loc[0, "length"] = np.nan
    filled = vae.impute(as_floats)
    assert filled.dtypes.to_dict() == table.dtypes.to_dict()
    assert filled["weight"].tolist() == table["weight"].head(5).tolist()


def test_array_fitted_model_imputes_a_frame_with_an_empty_object_column(X_small):
    vae = fitted(X_small, max_iter=2)
    frame = pd.DataFrame(X_small[:6]).astype({1: object})
    frame[1] = None
    filled = vae.impute(frame)
    assert filled.notna().all().all()


def test_object_column_of_numbers_is_numeric(table):
    from decimal import Decimal

    prices = table.assign(
        price=pd.Series([Decimal("1.25") * i for i in range(240)], dtype=object)
    )
    vae = fitted(prices, max_iter=2)
    assert vae.schema_.to_frame().loc["price", "likelihood"] == "gaussian"


def test_boolean_column_given_as_strings_gets_no_astype_advice(table):
    vae = fitted(table)
    as_words = table.assign(member=np.where(table["member"], "yes", "no"))
    with pytest.raises(ValueError, match="Map its values back to True/False"):
        vae.transform(as_words)
