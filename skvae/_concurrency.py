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
