"""The gateway's health answers for load balancers and operators: ``GET /healthz`` (200
while the process serves) and ``GET /readyz`` (200 when the metadata store answers and at
least REPLICATION_FACTOR nodes are live, else 503 with the failed checks), as ``dfs-api``
answers them (``dfs.monitoring.readiness``).

S3 has no such paths: ``/healthz`` is also the path-style address of a bucket named
``healthz``. Only an unsigned GET or HEAD is a health check (``health_answer``); a signed one
is the S3 call it names. A load balancer's probe is never signed, and an anonymous S3
request would be refused anyway.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from dfs import protocol
from dfs.monitoring import readiness
from dfs.s3.context import COORDINATOR
from dfs.server import healthz

CHECK_TIMEOUT = 5.0  # seconds; a probe that waits longer than this is a failed probe


async def readyz(request: web.Request) -> web.Response:
    coord = request.app[COORDINATOR]
    return await readiness(coord.live_nodes, coord.rf, CHECK_TIMEOUT)


def _unsigned(request: web.Request) -> bool:
    return hdrs.AUTHORIZATION not in request.headers and "X-Amz-Signature" not in request.query


async def health_answer(request: web.Request) -> web.StreamResponse | None:
    """The answer to an unsigned health probe; None for every other request."""
    if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD) or not _unsigned(request):
        return None
    if request.path == protocol.HEALTHZ:
        return await healthz(request)
    if request.path == protocol.READYZ:
        return await readyz(request)
    return None
