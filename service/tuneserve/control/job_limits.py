"""How big one fine-tuning job may be: checked when it is created, before it is queued.

The checks read the resolved ``TrainingConfig``, not the request: an ``auto`` value is then
the deployment's default, held to the same limits, so a misconfigured default is refused with
a message instead of training for days.
"""

from __future__ import annotations

from tuneserve.errors import InvalidRequest
from tuneserve.settings import LimitSettings
from tuneserve.training.config import TrainingConfig

EPOCHS = "hyperparameters.n_epochs"
BATCH_SIZE = "hyperparameters.batch_size"


def check_job_size(config: TrainingConfig, training_rows: int, limits: LimitSettings) -> None:
    """Refuse (400, naming the hyperparameter) a job over the deployment's limits.

    ``training_rows`` is the training file's row count, from its record: the rows a job
    trains on per epoch are at most those (some may be held out for validation).
    """
    if config.n_epochs > limits.max_epochs:
        raise InvalidRequest(
            f"n_epochs is {config.n_epochs}; at most {limits.max_epochs} are accepted",
            param=EPOCHS,
        )
    if config.batch_size > limits.max_training_batch_size:
        raise InvalidRequest(
            f"batch_size is {config.batch_size}; at most {limits.max_training_batch_size} "
            "is accepted",
            param=BATCH_SIZE,
        )
    trained = config.n_epochs * training_rows
    if trained > limits.max_epoch_rows:
        raise InvalidRequest(
            f"{config.n_epochs} epochs of the training file's {training_rows} rows are "
            f"{trained} rows to train; at most {limits.max_epoch_rows} are accepted: use "
            "fewer epochs or a smaller file",
            param=EPOCHS,
        )
