"""A one-line progress bar over epochs, for ``verbose=1``. No third-party deps."""

import sys


def _duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    )


class ProgressBar:
    """Redraws one line per epoch: bar, the plan's progress, losses, KL weight,
    learning rate, validation score.

    The first line states the plan (rows, batch, epochs, steps, samples); each
    epoch then shows the steps and samples done, the rate in rows per second
    and the time left at that rate.

    Parameters
    ----------
    plan : TrainingPlan
        What this training call will do (``skvae._training.plan_budget``).
    first_epoch : int, default=0
        Epochs run before this call, so that a warm start counts on.
    stream : file-like, default=None
        Where to write; ``sys.stdout`` when None.
    offset : float, default=0.0
        Added to the losses and subtracted from the validation ELBO, to show them
        in the units of the caller's data rather than the standardised ones.
    width : int, default=20
        Characters of the bar itself.
    """

    def __init__(self, plan, first_epoch=0, stream=None, offset=0.0, width=20):
        self.plan = plan
        self.total_epochs = plan.max_epochs
        self.first_epoch = first_epoch
        self.offset = offset
        self.stream = sys.stdout if stream is None else stream
        self.width = width
        epochs = f"{plan.max_epochs} epochs"
        if plan.min_epochs is not None:
            epochs = (
                f"{plan.min_epochs} epochs, on to {plan.max_epochs} while the "
                "loss improves"
            )
        self.stream.write(
            f"VAETransformer plan: {plan.n_rows:,} rows, batch {plan.batch_size:,}, "
            f"{epochs}: at most {plan.max_steps:,} steps, "
            f"{plan.max_samples:,} samples, KL warm-up {plan.warmup_epochs:.3g} "
            "epochs\n"
        )

    def __call__(self, record, history):
        done = record.epoch - self.first_epoch
        filled = round(self.width * done / self.total_epochs)
        rate = record.rows_per_second
        left = (self.plan.max_samples - record.samples) / rate if rate > 0 else 0.0
        line = (
            f"\rVAETransformer [{'=' * filled}{' ' * (self.width - filled)}] "
            f"epoch {record.epoch}/{self.first_epoch + self.total_epochs}  "
            f"step {record.steps:,}/{self.plan.max_steps:,}  "
            f"{rate:,.0f} rows/s  left {_duration(left)}  "
            f"loss {record.loss + self.offset:.4g}  "
            f"recon {record.reconstruction + self.offset:.4g}  "
            f"KL {record.kl:.4g}  KL weight {record.kl_weight:.3g}  "
            f"lr {record.learning_rate:.3g}"
        )
        if record.validation_score is not None:
            line += f"  val ELBO {record.validation_score - self.offset:.4g}"
        self.stream.write(line)
        self.stream.flush()

    def close(self):
        """End the line, whether or not training ran to ``total_epochs``."""
        self.stream.write("\n")
        self.stream.flush()
