"""A killed run's placement group, found by who created it, and freed.

The runner kills a run (its host, the process that called ``fit``) when a cancel's grace
period is over; Ray then kills the actors the host owns, Ray Train's controller among them,
and those the controller owns. The workers' placement group outlives them: the controller
created it, and Ray removes a group only once its creator's job has ended too, and the job
here is the service's own. Ray Train starts a detached ``PlacementGroupCleaner`` for this,
but it asks the dashboard's state API whether the controller lives, and the local cluster
runs without the dashboard: there the group's CPUs would stay reserved until the cluster
stops, and the cleaner waits on (an idle process per killed run; with a dashboard, as on
Kubernetes, it finds the group gone and ends).

The group is found in GCS's own tables (no dashboard needed) by its creator: the controller
is the actor the host owns, the group the one the controller created. No other run's group
is touched, however many run at once. These tables have no public API in Ray: this module is
the one place that reads them.
"""

from __future__ import annotations

import logging
import time

import ray
from ray._private import state
from ray.actor import ActorHandle
from ray.core.generated import gcs_pb2
from ray.util.placement_group import PlacementGroup, remove_placement_group

logger = logging.getLogger("tuneserve.training")

CONTROLLER = "TrainController"
DEATH_WAIT_S = 10  # for the controller to be dead, so that it creates nothing more


def free_killed_run(host: ActorHandle) -> None:
    """Remove the placement group of the run ``host`` called ``fit`` for; call it once
    ``host`` is killed. It never raises: the job is cancelled whatever happens here, and a
    group it could not find or remove is logged (and stays reserved, as before)."""
    try:
        _free(host)
    except Exception:
        logger.exception("could not release the placement group of a killed run")


def _free(host: ActorHandle) -> None:
    actors = state.actors()
    run_host = actors[host._actor_id.hex()]
    controllers = [
        actor
        for actor in actors.values()
        if actor["ActorClassName"] == CONTROLLER and _owned_by(actor, run_host)
    ]
    if not controllers:
        return  # killed before it created one: nothing was reserved
    ids = {actor["ActorID"] for actor in controllers}
    _wait_until_dead(ids)
    for group_id in _groups_created_by(ids):
        remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(group_id)))
        logger.info("released the placement group %s of a killed run", group_id)


def _owned_by(actor: dict, owner: dict) -> bool:
    """Whether ``owner``'s process created ``actor`` (an owner is known by its address)."""
    mine, theirs = actor["OwnerAddress"], owner["Address"]
    fields = ("NodeID", "IPAddress", "Port")
    return [mine[f] for f in fields] == [theirs[f] for f in fields]


def _wait_until_dead(actor_ids: set[str]) -> None:
    deadline = time.monotonic() + DEATH_WAIT_S
    while any(state.actors(actor_id=i)["State"] != "DEAD" for i in actor_ids):
        if time.monotonic() > deadline:
            logger.warning("a killed run's controller still lives after %s s", DEATH_WAIT_S)
            return
        time.sleep(0.1)


def _groups_created_by(actor_ids: set[str]) -> list[str]:
    """Ids of the placement groups, not yet removed, that ``actor_ids`` created."""
    groups = []
    for raw in state.state._connect_and_get_accessor().get_placement_group_table():
        group = gcs_pb2.PlacementGroupTableData.FromString(raw)
        removed = group.state == gcs_pb2.PlacementGroupTableData.REMOVED
        if not removed and group.creator_actor_id.hex() in actor_ids:
            groups.append(group.placement_group_id.hex())
    return groups
