"""Resources and limits of one Serve deployment, as ``Deployment.options`` takes them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DeploymentOptions(BaseModel):
    """Resources and limits of one Serve deployment (``TUNESERVE_SERVING__<NAME>__<FIELD>``)."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(default=1, ge=1, description="Fixed replica count.")
    autoscaling: bool = Field(default=False, description="Scale between min and max replicas.")
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=4, ge=1)
    target_ongoing_requests: float = Field(default=8, gt=0)
    num_cpus: float = Field(
        default=0.1,
        ge=0,
        description="Logical CPUs reserved per replica; small, so that on a "
        "small machine a training worker still finds a whole CPU free.",
    )
    num_gpus: float = Field(default=0, ge=0)
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(
        default=256,
        ge=-1,
        description="Requests waiting per caller beyond max_ongoing; "
        "past it callers get 503. -1: unbounded.",
    )

    def serve_options(self) -> dict:
        """The keyword arguments of ``Deployment.options`` these settings stand for."""
        options: dict = {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.num_replicas
        return options
