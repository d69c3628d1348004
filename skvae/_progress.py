"""A one-line progress bar over epochs, for ``verbose=1``. No third-party deps."""

import sys


class ProgressBar:
    """Redraws one line per epoch: bar, losses, KL weight, validation score.

    Parameters
    ----------
    total_epochs : int
        Epochs this training call may run (the bar's length).
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

    def __init__(self, total_epochs, first_epoch=0, stream=None, offset=0.0, width=20):
        self.total_epochs = total_epochs
        self.first_epoch = first_epoch
        self.offset = offset
        self.stream = sys.stdout if stream is None else stream
        self.width = width

    def __call__(self, record, history):
        done = record.epoch - self.first_epoch
        filled = round(self.width * done / self.total_epochs)
        line = (
            f"\rVAETransformer [{'=' * filled}{' ' * (self.width - filled)}] "
            f"epoch {record.epoch}/{self.first_epoch + self.total_epochs}  "
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
