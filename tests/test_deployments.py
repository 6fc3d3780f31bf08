"""The Serve config files describe the same application the CLI builds."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema
from tuneserve.k8s_render import application_settings
from tuneserve.serving.app import app_builder, task_app_builder

DEPLOYMENTS = Path(__file__).resolve().parents[1] / "deployments"


def test_local_yaml_is_a_valid_serve_config_that_builds_the_apps():
    """The gateway and one application per task, each built as the controller builds it."""
    config = yaml.safe_load((DEPLOYMENTS / "local.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    gateway, *tasks = schema.applications
    assert gateway.import_path == "tuneserve.serving.app:app_builder"
    assert isinstance(app_builder(gateway.args), Application)
    assert {app.route_prefix for app in tasks} == {
        "/v1/classify",
        "/v1/ner",
        "/v1/qa",
        "/v1/translate",
        "/v1/chat/completions",
    }
    for application in tasks:
        assert application.import_path == "tuneserve.serving.app:task_app_builder"
        assert application.args["settings"] == gateway.args  # one copy, by a YAML alias
        assert isinstance(task_app_builder(application.args), Application)
    (settings,) = application_settings(config)
    assert settings.app_name == gateway.name
