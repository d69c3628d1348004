"""Big tables: the automatic training budget, the data layer, wide label columns."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skvae._data as data
import skvae._schema as schema_module
import skvae._training as training
from skvae import VAETransformer
from skvae._likelihoods import WIDE_LEVELS, CategoricalLikelihood, embedding_dim
from skvae._networks import TableReader
from skvae._schema import ModelLayout, build_schema

TINY = dict(hidden_layer_sizes=(16,), random_state=0)


# ------------------------------------------------------------ the budget rule


def test_small_tables_keep_the_tuned_budget():
    # Up to 2,048 rows: the budget the defaults were tuned with on the digits.
    for n_rows in (10, 1257, 2048):
        plan = training.plan_budget(n_rows)
        assert (plan.batch_size, plan.max_epochs) == (min(128, n_rows), 150)
        assert plan.warmup_epochs == 10
    assert training.plan_budget(1257).max_steps == 1500


@pytest.mark.parametrize(
    "n_rows, batch_size, min_epochs, max_epochs",
    [
        (5_000, 256, 88, 150),
        (100_000, 1024, 15, 60),
        (1_000_000, 2048, 4, 16),
        (10_000_000, 8192, 3, 12),
    ],
)
def test_large_tables_get_larger_batches_and_fewer_epochs(
    n_rows, batch_size, min_epochs, max_epochs
):
    # The size rule's epochs are the least the plan runs; it may run on to
    # four times as many (at most 150) while the loss improves.
    plan = training.plan_budget(n_rows)
    assert (plan.batch_size, plan.min_epochs, plan.max_epochs) == (
        batch_size,
        min_epochs,
        max_epochs,
    )
    assert plan.warmup_epochs == pytest.approx(min_epochs / 15)


def test_budget_grows_far_slower_than_the_rows():
    plans = {n: training.plan_budget(n) for n in (10**4, 10**5, 10**6)}
    samples = {n: plan.min_epochs * n for n, plan in plans.items()}
    # Ten times the rows: far less than ten times the samples seen ...
    assert samples[10**5] < 3 * samples[10**4]
    assert samples[10**6] < 3 * samples[10**5]
    # ... while the number of steps stays in the range the digits needed.
    for plan in plans.values():
        assert 1000 <= plan.min_epochs * plan.steps_per_epoch <= 5000
        assert plan.max_epochs <= min(4 * plan.min_epochs, 150)


def test_explicit_values_override_the_rule():
    plan = training.plan_budget(100_000, batch_size=64, max_epochs=7, warmup_epochs=2)
    assert (plan.batch_size, plan.max_epochs, plan.warmup_epochs) == (64, 7, 2.0)
    assert training.plan_budget(50, batch_size=128).batch_size == 50  # clipped
    # An explicit epoch count with the automatic warm-up: a fifteenth of it.
    assert training.plan_budget(500, max_epochs=30).warmup_epochs == 2.0


@pytest.mark.parametrize(
    "n_rows, patience",
    [(100, 160), (233, 80), (1257, 16), (2048, 10), (100_000, 10)],
)
def test_patience_spans_at_least_160_steps(n_rows, patience):
    # 10 epochs, or as many as make 160 minibatches where epochs are short.
    plan = training.plan_budget(n_rows)
    assert plan.patience == patience
    assert plan.patience * plan.steps_per_epoch >= 160
    assert training.plan_budget(n_rows, patience=3).patience == 3  # explicit


def test_a_tiny_table_is_not_stopped_by_a_few_noisy_epochs():
    # One minibatch an epoch: ten epochs without progress are ten noisy steps,
    # which stopped such fits far short of their plan.
    X = np.random.RandomState(0).randn(100, 3)
    patient = VAETransformer(**TINY).fit(X)
    hasty = VAETransformer(n_iter_no_change=10, **TINY).fit(X)
    assert patient.training_plan_["n_iter_no_change"] == 160
    assert hasty.training_plan_["n_iter_no_change"] == 10
    assert hasty.n_iter_ < patient.n_iter_ == 150


def fit_whose_loss(monkeypatch, improves):
    # Shrink the "small table" size so a quick fit exercises the growth rule.
    monkeypatch.setattr(training, "AUTO_SMALL_ROWS", 64)
    monkeypatch.setattr(training, "still_improving", lambda losses: improves)
    X = np.random.RandomState(0).randn(1024, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        # (patience so long that only the plan ends training)
        return VAETransformer(n_iter_no_change=1000, **TINY).fit(X)


def test_default_fit_follows_its_plan_without_a_convergence_warning(monkeypatch):
    # A loss that has plateaued: exactly the size rule's epochs, as a fixed
    # plan of them would run.
    vae = fit_whose_loss(monkeypatch, improves=False)
    # ratio 16: batch 128 * 4; ceil(150 * 64 * 16 ** 0.4 / 1024) = 29 epochs,
    # on to 4 * 29 = 116 while the loss improves.
    assert vae.training_plan_ == {
        "n_rows": 1024,
        "batch_size": 512,
        "max_iter": 116,
        "min_iter": 29,
        "warmup_epochs": pytest.approx(29 / 15),
        "max_steps": 232,
        "max_samples": 116 * 1024,
        "n_iter_no_change": 1000,  # explicit, so kept
        "cuda_graphs": False,  # a CPU fit
    }
    assert vae.n_iter_ == 29
    rates = [record["learning_rate"] for record in vae.history_]
    assert rates == [2e-3] * 20 + [5e-4] * 9  # the step at 70 %, as ever
    last = vae.history_[-1]
    assert (last["steps"], last["samples"]) == (58, 29 * 1024)
    assert last["seconds"] > 0
    assert last["rows_per_second"] == pytest.approx(last["samples"] / last["seconds"])
    steps = [record["steps"] for record in vae.history_]
    assert steps == [2 * (i + 1) for i in range(29)]


def test_a_default_fit_whose_loss_improves_runs_on_to_its_cap(monkeypatch):
    vae = fit_whose_loss(monkeypatch, improves=True)
    assert vae.n_iter_ == 116
    rates = [record["learning_rate"] for record in vae.history_]
    # 70 % of the cap at the full rate (81 of 116), then the step down.
    assert rates == [2e-3] * 81 + [5e-4] * 35


def test_the_plateau_rule():
    falling = list(np.linspace(50.0, 10.0, 40))
    assert training.still_improving(falling)
    flat_tail = list(np.linspace(50.0, 10.0, 20)) + [10.0] * 20
    assert not training.still_improving(flat_tail)
    # A tail whose best moves by a hair has stopped improving.
    assert not training.still_improving(flat_tail[:-1] + [9.99999])
    assert training.still_improving([5.0])  # too short to judge


def test_the_schedule_grows_the_rest_with_the_full_rate_epochs():
    config = training.TrainingConfig(
        batch_size=8, max_epochs=40, tol=0, n_iter_no_change=99, min_epochs=10
    )
    schedule = training.EpochSchedule.of(config)
    assert (schedule.full_rate, schedule.total) == (7, 10)
    falling = list(np.linspace(50.0, 0.0, 41))
    for done in range(1, 41):
        schedule.update(done, falling[:done])
    # 70 % of the cap at the full rate; the rest in the rule's proportion 3/7.
    assert (schedule.full_rate, schedule.total) == (28, 40)
    fixed = training.EpochSchedule.of(
        training.TrainingConfig(batch_size=8, max_epochs=15, tol=0, n_iter_no_change=9)
    )
    fixed.update(11, falling[:11])
    assert (fixed.full_rate, fixed.total) == (11, 15)


def test_an_explicit_max_iter_that_is_reached_still_warns():
    X = np.random.RandomState(0).randn(60, 3)
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        VAETransformer(max_iter=2, **TINY).fit(X)


def test_auto_warm_up_of_partial_fit_is_what_fit_would_plan(X_small):
    vae = VAETransformer(**TINY)
    vae.partial_fit(X_small)
    # 300 rows: a fit would plan 150 epochs and warm up over 10 of them, so one
    # chunk's epoch weights the KL term by a tenth.
    assert vae.history_[0]["kl_weight"] == pytest.approx(0.1)
    assert vae.training_plan_["max_iter"] == 1


@pytest.mark.parametrize("name", ["batch_size", "max_iter", "warmup_epochs"])
def test_auto_parameters_reject_other_strings(name):
    with pytest.raises(ValueError, match=name):
        VAETransformer(**{name: "fast"}).fit(np.ones((10, 2)))


# ------------------------------------------------------------ column statistics


def test_column_statistics_match_numpy_with_holes_and_constants(monkeypatch):
    monkeypatch.setattr(schema_module, "_CHUNK_ROWS", 7)  # many chunks
    rng = np.random.RandomState(0)
    X = rng.randn(50, 4) * [1.0, 10.0, 1e-3, 1.0] + [0.0, 1e8, 5.0, 3.0]
    X[:, 3] = 3.0  # constant
    X[rng.rand(50) < 0.2, 0] = np.nan
    X[:10, 2] = np.nan  # holes through the whole first chunk
    stats = schema_module._column_stats(X)
    np.testing.assert_allclose(stats.mean, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, np.nanstd(X, axis=0), rtol=1e-9)
    np.testing.assert_array_equal(stats.n_observed, (~np.isnan(X)).sum(axis=0))
    np.testing.assert_array_equal(stats.constant, [False, False, False, True])


def test_float32_statistics_need_no_float64_copy_and_stay_exact():
    rng = np.random.RandomState(0)
    X = (rng.randn(20_000, 3) * [1.0, 1e-3, 100.0] + [1e4, -2.0, 0.0]).astype(
        np.float32
    )
    stats = schema_module._column_stats(X)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(stats.mean, X64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, X64.std(axis=0), rtol=1e-9)


# ------------------------------------------------------------ the data layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardised_rows_share_the_array_and_match_the_schema(dtype):
    rng = np.random.RandomState(0)
    X = (rng.randn(40, 3) * [1.0, 5.0, 0.1] + [2.0, -1.0, 1e3]).astype(dtype)
    X[3, 1] = np.nan
    schema = build_schema(X)
    rows = data.TrainingRows.from_table(schema, X, "cpu")
    assert isinstance(rows, data.StandardisedRows)
    assert np.shares_memory(rows.raw.numpy(), X)  # no copy of the table
    expected = schema.encode(X)
    batch = rows.batch(torch.arange(40))
    np.testing.assert_array_equal(batch.targets.numpy(), expected.targets)
    np.testing.assert_array_equal(batch.observed.numpy(), expected.observed)
    # A chosen set of rows, in the order asked for.
    picked = rows.batch(torch.tensor([5, 0, 3]))
    np.testing.assert_array_equal(picked.targets.numpy(), expected.targets[[5, 0, 3]])


@pytest.mark.parametrize("kind", ["array", "frame"])
def test_rows_held_on_the_host_train_exactly_as_resident_ones(
    X_small, table_frame, kind, monkeypatch
):
    # As when a GPU lacks room: rows stay in host memory, gathered there and
    # moved a batch at a time. The same fit, bit for bit.
    X = X_small if kind == "array" else table_frame
    params = dict(max_iter=3, warmup_epochs=0, batch_size=32, **TINY)
    resident = VAETransformer(**params).fit(X)
    monkeypatch.setattr(data, "_fits_on", lambda device, nbytes: False)
    streamed = VAETransformer(**params).fit(X)
    rows = data.TrainingRows.from_table(streamed.schema_, X, "cpu")
    assert not rows.resident
    np.testing.assert_array_equal(streamed.loss_curve_, resident.loss_curve_)
    np.testing.assert_array_equal(streamed.transform(X), resident.transform(X))


def test_a_chunk_with_holes_after_a_clean_one_trains(X_small):
    # The schema of a clean first chunk says "no holes"; the next chunk's holes
    # must still be read as missing, not fed to the networks as NaN.
    vae = VAETransformer(warmup_epochs=0, **TINY).partial_fit(X_small[:150])
    holey = X_small[150:].copy()
    holey[::3, 1] = np.nan
    vae.partial_fit(holey)
    assert vae.n_iter_ == 2 and np.isfinite(vae.loss_curve_).all()
    assert np.isfinite(vae.transform(holey)).all()


def test_arrays_with_categorical_columns_are_read_as_levels():
    rng = np.random.RandomState(0)
    levels = np.array([2.0, 5.0, 7.0])
    X = np.column_stack([rng.randn(90), levels[rng.randint(3, size=90)]])
    vae = VAETransformer(
        likelihood={1: "categorical"}, max_iter=5, warmup_epochs=0, **TINY
    ).fit(X)
    assert vae.schema_.to_frame()["categories"].iloc[1] == [2.0, 5.0, 7.0]
    assert np.isfinite(vae.transform(X)).all()
    assert set(vae.sample(40, random_state=0)[:, 1]) <= {2.0, 5.0, 7.0}
    holey = X.copy()
    holey[:5, 1] = np.nan
    assert set(vae.impute(holey)[:5, 1]) <= {2.0, 5.0, 7.0}
    unseen = X[:2].copy()
    unseen[0, 1] = 3.0
    with pytest.raises(ValueError, match="not seen during fit"):
        vae.transform(unseen)


def test_auto_warm_up_of_chunks_keeps_the_first_chunks_plan(X_small):
    big = np.vstack([X_small] * 10)  # 3,000 rows: a fit would warm up 8 epochs
    vae = VAETransformer(**TINY).partial_fit(big)
    vae.partial_fit(X_small[:100])  # alone, 100 rows would warm up 10 epochs
    vae.partial_fit(big)
    weights = [record["kl_weight"] for record in vae.history_]
    assert weights == pytest.approx([1 / 8, 2 / 8, 3 / 8])


def test_map_batches_gathers_results_in_order():
    values = np.arange(23, dtype=np.float32)
    seen = []

    def load(rows):
        seen.append(rows)
        return torch.from_numpy(values[rows])

    doubled, plus_one = data.map_batches(lambda x: (2 * x, x + 1), 23, load, 5)
    np.testing.assert_array_equal(doubled, 2 * values)
    np.testing.assert_array_equal(plus_one, values + 1)
    assert [s.start for s in seen] == [0, 5, 10, 15, 20]


def test_sparse_rows_densify_within_the_hosts_budget_on_any_device(X_small):
    # The densified batch lives in host memory even when the model is on a GPU,
    # whose budget is 32x the host's.
    vae = VAETransformer(max_iter=1, warmup_epochs=0, device="cpu", **TINY).fit(X_small)
    width = 30_000
    host_rows = data.INFERENCE_BYTES["cpu"] // (12 * width)
    for device in ("cpu", "cuda"):  # (only the budget is looked up: no GPU needed)
        rows = data.inference_batch_rows(vae.module_, torch.device(device), 1, width)
        assert 1 <= rows <= host_rows
    gpu_dense = data.inference_batch_rows(vae.module_, torch.device("cuda"))
    assert gpu_dense > 10 * host_rows  # dense inputs keep the GPU's budget


def test_inference_batches_follow_the_memory_budget(X_small, monkeypatch):
    vae = VAETransformer(max_iter=2, warmup_epochs=0, **TINY).fit(X_small)
    device = vae._model.device
    many = data.inference_batch_rows(vae.module_, device)
    assert data.inference_batch_rows(vae.module_, device, n_draws=16) < many
    monkeypatch.setitem(data.INFERENCE_BYTES, device.type, 1000)
    assert data.inference_batch_rows(vae.module_, device) < 10
    expected = vae.transform(X_small)
    # Tiny batches give the same codes.
    np.testing.assert_allclose(vae.transform(X_small), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ wide label columns


@pytest.fixture
def table_frame():
    rng = np.random.RandomState(0)
    n = 60
    return (
        pd.DataFrame(
            {
                "x": rng.randn(n),
                "count": rng.poisson(3, n),
                "flag": rng.rand(n) > 0.5,
                "colour": rng.choice(["red", "green", "blue"], n),
            }
        )
        .astype({"count": "float64"})
        .mask(rng.rand(n, 4) < 0.1)
    )


def test_reader_builds_the_encoders_input_on_the_device():
    layout = ModelLayout(
        n_gaussian=1,
        poisson_log_mean=(1.0,),
        poisson_log_scale=(2.0,),
        poisson_log_rate=(0.0,),
        n_bernoulli=1,
        levels=(3,),
        mask_inputs=True,
    )
    reader = TableReader(layout)
    x = torch.tensor([[0.5, 3.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    observed = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    out = reader(x, observed)
    first = [0.5, (np.log1p(3.0) - 1.0) / 2.0, 1.0, 0.0, 0.0, 1.0, 1, 1, 1, 1]
    # Missing entries read as 0 (the Bernoulli's -1 too), no level is hot.
    second = [0.0, (0.0 - 1.0) / 2.0, 0.0, 0.0, 0.0, 0.0, 0, 1, 0, 0]
    torch.testing.assert_close(out, torch.tensor([first, second], dtype=torch.float32))
    assert reader.width == out.shape[1]
    identity = TableReader(ModelLayout(n_gaussian=3))
    assert identity.identity and identity(x[:, :3]) is not None
    plain = x[:, :3]
    assert identity(plain) is plain  # nothing to do for Gaussian columns


def wide_table(n_rows=400, n_levels=300, seed=0):
    rng = np.random.RandomState(seed)
    level = rng.randint(n_levels, size=n_rows)
    return pd.DataFrame(
        {
            "value": level / n_levels + 0.05 * rng.randn(n_rows),
            "other": rng.randn(n_rows),
            "tail": pd.Series([f"N{k:04d}" for k in level], dtype=object),
        }
    )


def test_wide_label_columns_are_embedded_not_one_hot():
    frame = wide_table()
    n_levels = frame["tail"].nunique()
    assert n_levels > WIDE_LEVELS
    vae = VAETransformer(max_iter=3, warmup_epochs=0, **TINY).fit(frame)
    reader = vae.module_.encoder.reader
    dim = embedding_dim(n_levels)
    assert [e.weight.shape for e in reader.embeddings] == [(n_levels, dim)]
    assert vae.module_.encoder.net[0].in_features == 2 + dim  # not 2 + n_levels
    block = vae.module_.likelihood.blocks[-1]
    assert isinstance(block, CategoricalLikelihood) and block.n_params == dim
    assert vae.module_.decoder.net[-1].out_features == 2 + dim
    Z = vae.transform(frame)
    assert np.isfinite(Z).all() and np.isfinite(vae.score_samples(frame)).all()
    seen = set(frame["tail"])
    assert set(vae.inverse_transform(Z)["tail"]) <= seen
    assert set(vae.sample(50, random_state=0)["tail"]) <= seen
    holey = frame.copy()
    holey.loc[:9, "tail"] = None
    filled = vae.impute(holey)
    assert filled["tail"].notna().all() and set(filled["tail"]) <= seen
    restored = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(restored.transform(frame), Z)


def test_wide_columns_learn_their_levels():
    # "value" is determined by the level: a trained model predicts it from the
    # level far better than an untrained one, so the embedding carries it.
    frame = wide_table(n_rows=2000, n_levels=100)
    holey = frame.assign(value=np.nan)
    untrained = VAETransformer(max_iter=1, warmup_epochs=0, **TINY).fit(frame)
    trained = VAETransformer(max_iter=60, warmup_epochs=0, **TINY).fit(frame)

    def error(vae):
        guess = vae.impute(holey)["value"].to_numpy()
        return np.mean((guess - frame["value"].to_numpy()) ** 2)

    assert error(trained) < 0.5 * error(untrained)


def test_unseen_label_message_stays_short_for_wide_columns():
    frame = wide_table()
    vae = VAETransformer(max_iter=1, warmup_epochs=0, **TINY).fit(frame)
    new = frame.iloc[:2].copy()
    new.loc[new.index[0], "tail"] = "unknown"
    with pytest.raises(ValueError, match="not seen during fit") as error:
        vae.transform(new)
    assert "more)" in str(error.value) and len(str(error.value)) < 600


def test_early_stopping_reads_both_parts_from_the_array_itself(X_small, monkeypatch):
    made = []
    from_table = data.TrainingRows.from_table.__func__

    def spy(cls, *args, **kwargs):
        made.append(from_table(cls, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(data.TrainingRows, "from_table", classmethod(spy))
    X = X_small.astype(np.float32)
    # On the CPU: a GPU fit copies the rows to the device, by design.
    vae = VAETransformer(
        early_stopping=True, max_iter=3, warmup_epochs=0, device="cpu", **TINY
    )
    vae.fit(X)
    train, validation = made
    for rows in made:  # no copy of the table, only positions in it
        assert isinstance(rows, data.StandardisedRows)
        assert np.shares_memory(rows.raw.numpy(), X)
    assert (len(train), len(validation)) == (270, 30)
    positions = np.concatenate([train.rows.numpy(), validation.rows.numpy()])
    np.testing.assert_array_equal(np.sort(positions), np.arange(300))
    # The standardisation comes from the training part only.
    training_part = X[train.rows.numpy()].astype(np.float64)
    np.testing.assert_allclose(vae.mean_, training_part.mean(axis=0), rtol=1e-9)


@pytest.mark.parametrize(
    "values, family",
    [
        ([1, 2.5, __import__("decimal").Decimal("3")], "number"),
        ([True, False, None], "bool"),
        ([True, 1], "label"),  # a bool among numbers is no number
        ([1 + 0j, 2], "number"),  # complex, but real
        ([1 + 1j, 2], "label"),
        (["a", 1], "label"),
        ([np.float32(1.5), np.int64(2)], "number"),
    ],
)
def test_object_columns_are_typed_by_their_entries(values, family):
    column = pd.Series(values, dtype=object)
    assert schema_module._family(column) == family


def test_a_wide_object_column_is_labels_and_nested_entries_are_refused():
    # 300,000 labels: the entries' types are collected once, not tested one by
    # one in Python (which took seconds per column).
    column = pd.Series([f"N{i % 4000}" for i in range(300_000)], dtype=object)
    assert schema_module._family(column) == "label"
    with pytest.raises(ValueError, match="nested objects"):
        schema_module._checked_family("tail", pd.Series(["a", ["b"]], dtype=object))
