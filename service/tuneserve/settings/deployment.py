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
    target_ongoing_requests: float = Field(
        default=8, gt=0, description="Requests per replica the autoscaler aims for."
    )
    upscale_delay_s: float = Field(
        default=30, ge=0, description="How long load must stay high before a replica is added."
    )
    downscale_delay_s: float = Field(
        default=600, ge=0, description="How long load must stay low before one is removed."
    )
    look_back_period_s: float = Field(
        default=30, gt=0, description="Window over which ongoing requests are averaged."
    )
    num_cpus: float = Field(
        default=0.1,
        ge=0,
        description="Logical CPUs reserved per replica; small, so that on a "
        "small machine a training worker still finds a whole CPU free.",
    )
    num_gpus: float = Field(default=0, ge=0)
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per replica: places replicas on the nodes that "
        'advertise them, e.g. {"encoder": 0.01} for a CPU worker group.',
    )
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
            "ray_actor_options": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "resources": self.resources,
            },
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s,
            }
        else:
            options["num_replicas"] = self.num_replicas
        return options
