"""scikit-learn's own conformance checks, run on every check."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import VAEImputer, VAETransformer

EXPECTED_FAILED_CHECKS = {
    # Networks run in float32, and BLAS picks different kernels for 1 row and for
    # 20 rows (and transform runs up to 16 rows through numpy, more through torch),
    # so a row's code can move by one float32 ulp (~1e-7 relative) with the batch it
    # is encoded in; the check demands 1e-7. It sometimes passes (XPASS, which does
    # not fail the suite). test_estimator.py checks the property at float32
    # tolerance.
    "check_methods_subset_invariance": (
        "float32 networks: codes agree to float32 precision, not always to rtol=1e-7"
    ),
}


# The checks test behaviour, not capacity: a small network keeps them quick.
SMALL = dict(hidden_layer_sizes=(64, 32), max_iter=5, warmup_epochs=0, random_state=0)


@parametrize_with_checks(
    [
        VAETransformer(**SMALL),
        VAEImputer(VAETransformer(**SMALL)),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
