"""moto's DynamoDB server for the contract suite, one request at a time.

``python tests/contract/moto_server.py PORT`` serves on 127.0.0.1:PORT. moto's threaded server
runs requests concurrently but its conditional writes and TransactWriteItems are not atomic
under threads (a cancelled transaction restores a snapshot of whole tables), whereas DynamoDB's
are. Serializing requests gives the atomicity the concurrency tests rely on; moto is GIL-bound
at a few hundred ops/s anyway, so little speed is lost.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    run_simple("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
