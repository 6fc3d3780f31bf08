"""How the cluster finds its one JobRunner: a named, detached Ray actor per application.

Apart from ``runner.py`` so that the gateway can look the runner up without importing
the training pipeline (Ray Train, datasets) into every gateway replica.
"""

RUNNER_NAME = "tuneserve-job-runner"
