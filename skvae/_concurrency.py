"""One fitted model, many threads: what a fit publishes, and when.

Inference methods only read the fitted state, so any number of them run at
once. A fit trains a private copy of the estimator (for ``partial_fit`` and
``warm_start``, a copy of the networks and optimiser too) and publishes its
state in one step, under ``FittedStateLock``'s write side; inference methods
hold the read side for their whole call. So a method running while the same
model is being fitted sees the model from before the fit or from after it,
never a mixture, and never weights halfway through an update.

Standard library only.
"""

import functools
import threading


class FittedStateLock:
    """Many readers or one writer. Readers never wait for each other; the
    writer (a fit publishing its state: a dict update) waits for the readers
    in flight, and new readers wait for it.

    A thread that already reads may read again without waiting (a method that
    calls another, or pickles the estimator, while a writer waits): it would
    otherwise wait for a writer that waits for it.
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._depth = threading.local()

    def acquire_read(self):
        depth = getattr(self._depth, "value", 0)
        if depth:
            self._depth.value = depth + 1
            return
        with self._condition:
            while self._writing:
                self._condition.wait()
            self._readers += 1
        self._depth.value = 1

    def release_read(self):
        self._depth.value -= 1
        if self._depth.value:
            return
        with self._condition:
            self._readers -= 1
            if not self._readers:
                self._condition.notify_all()

    def write(self, update):
        """Run ``update()`` with no reader in flight."""
        with self._condition:
            self._writing = True
            try:
                while self._readers:
                    self._condition.wait()
                update()
            finally:
                self._writing = False
                self._condition.notify_all()


# Guards the creation of each estimator's lock (it is made on first use, so
# that estimators built by clone or unpickling get theirs too).
_CREATION = threading.Lock()


def state_lock(estimator):
    """The estimator's ``FittedStateLock``, made on first use."""
    lock = estimator.__dict__.get("_state_lock")
    if lock is None:
        with _CREATION:
            lock = estimator.__dict__.setdefault("_state_lock", FittedStateLock())
    return lock


def reads_fitted_state(method):
    """Run ``method`` under the read side of its estimator's lock."""

    @functools.wraps(method)
    def reading(self, *args, **kwargs):
        lock = state_lock(self)
        lock.acquire_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_read()

    return reading


def is_fitted_name(estimator, name):
    """Whether attribute ``name`` of ``estimator`` is fitted state: ends in
    ``_`` (scikit-learn's convention) or is one of its class's
    ``_FITTED_PRIVATE`` names."""
    return (name.endswith("_") and not name.startswith("__")) or name in type(
        estimator
    )._FITTED_PRIVATE


def private_copy(estimator, **own):
    """A shallow copy of ``estimator`` for a fit to work on (or a frozen view
    for lazy work), with the attributes ``own`` replaced: the copies of what
    the fit changes in place."""
    # Not copy.copy: that would go through __getstate__, a numpy round trip of
    # every weight.
    work = object.__new__(type(estimator))
    work.__dict__.update(
        (name, value)
        for name, value in vars(estimator).items()
        if name != "_state_lock"
    )
    work.__dict__.update(own)
    return work


def publish(estimator, work):
    """Replace ``estimator``'s fitted state by ``work``'s (None: unfit it), in
    one step under the write side of its lock."""

    def update():
        for name in [
            name for name in vars(estimator) if is_fitted_name(estimator, name)
        ]:
            delattr(estimator, name)
        if work is not None:
            # Fitted attributes only: a set_params made meanwhile stays.
            estimator.__dict__.update(
                (name, value)
                for name, value in vars(work).items()
                if is_fitted_name(estimator, name)
            )

    state_lock(estimator).write(update)


def fit_privately(estimator, fit, own=None):
    """Run ``fit(work)`` on a private copy of ``estimator``, then publish it.

    ``own``: the copies a fit that continues training works on (its networks,
    its history); None for a fit that starts from scratch. On failure a fit
    from scratch leaves the estimator unfitted, and one that continues leaves
    it as it was: it never holds a half-fitted model.
    """
    try:
        work = private_copy(estimator, **(own or {}))
        fit(work)
    except BaseException:
        if own is None:
            publish(estimator, None)
        raise
    publish(estimator, work)
