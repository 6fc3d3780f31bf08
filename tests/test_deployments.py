"""The Serve config files describe the same application the CLI builds."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema
from tuneserve.serving.app import app_builder

DEPLOYMENTS = Path(__file__).resolve().parents[1] / "deployments"


def test_local_yaml_is_a_valid_serve_config_that_builds_the_app():
    config = yaml.safe_load((DEPLOYMENTS / "local.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    (application,) = schema.applications
    assert application.import_path == "tuneserve.serving.app:app_builder"
    assert isinstance(app_builder(application.args), Application)
