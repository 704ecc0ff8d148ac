"""``GET /healthz``: 200 once actors, storage and the gateway are up (and, on a cluster node,
Redis answers); 503 saying what is not."""

from __future__ import annotations

from quart import Blueprint, current_app

from actors import addresses
from actors.staff.directory import ProbeStorage
from runtime import ActorError
from web import security

blueprint = Blueprint("health", __name__)

#: A health probe must answer fast even when something is stuck: load balancers time out at ~2 s.
PROBE_TIMEOUT = 1.0


@blueprint.get("/healthz")
async def healthz() -> tuple[dict[str, object], int]:
    registry = security.registry()
    actors_up = addresses.DIRECTORY in registry
    try:
        await registry.ref(addresses.DIRECTORY).ask(ProbeStorage(), timeout=PROBE_TIMEOUT)
        storage = "ok"
    except ActorError:
        storage = "unavailable"
    config = current_app.extensions["waitroom.config"]
    gateway = "ok" if config.gateway_ready() else "unavailable"
    cluster = config.cluster_status()
    healthy = actors_up and storage == "ok" and gateway == "ok" and cluster in (None, "ok")
    body: dict[str, object] = {
        "status": "ok" if healthy else "degraded",
        "actors": sum(1 for _ in registry.addresses()),
        "storage": storage,
        "gateway": gateway,
    }
    if cluster is not None:  # one node of a cluster: whether Redis answers (issue 18)
        body["cluster"] = cluster
    return body, 200 if healthy else 503
