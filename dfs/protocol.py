"""The wire contract shared by the API, the nodes and the client: paths, headers, bounds.

The README's "Wire protocol" tables document the same names; tests and deployments depend on
them, so a path or field is never renamed once shipped. Standard library only.
"""

from __future__ import annotations

from typing import Final

# --- API coordinator ---------------------------------------------------------------------
INIT_UPLOAD: Final = "/init-upload"
FINALIZE_UPLOAD: Final = "/finalize-upload"
DOWNLOAD_PLAN: Final = "/download-plan"
PROXY_CHUNK_UPLOAD: Final = "/proxy-chunk-upload"
PROXY_CHUNK_DOWNLOAD: Final = "/proxy-chunk-download"
ADMIN_STATS: Final = "/admin/stats"
NODES: Final = "/nodes"
NODE_HEARTBEAT: Final = "/nodes/heartbeat"
NODE_DEREGISTER: Final = "/nodes/deregister"
FILES: Final = "/files"

# --- storage node ------------------------------------------------------------------------
STORE_CHUNK: Final = "/store-chunk"
GET_CHUNK: Final = "/get-chunk"
HAS_CHUNKS: Final = "/has-chunks"
NODE_STATUS: Final = "/status"

# --- both --------------------------------------------------------------------------------
HEALTHZ: Final = "/healthz"

# Headers. A primary node forwards a chunk to the nodes listed in FORWARD_TO and marks the
# forwarded request with FORWARDED so that it is never fanned out again.
FORWARD_TO: Final = "X-Dfs-Forward-To"
FORWARDED: Final = "X-Dfs-Forwarded"

# Bounds.
KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
MAX_CHUNK_SIZE: Final = 16 * MIB
"""Largest chunk any chunker may produce and any node accepts (the body bound of PUT)."""
MIN_CHUNK_SIZE: Final = 4 * KIB
"""Smallest fixed chunk size: below it per-chunk overhead dominates and manifests explode."""
MAX_JSON_BODY: Final = 64 * MIB
"""Bound of JSON request bodies; an init-upload of a ~500 GiB file at 1 MiB chunks fits."""
MAX_CHUNKS_PER_FILE: Final = 1_000_000
MAX_HAS_CHUNKS: Final = 10_000
MAX_FILE_NAME: Final = 1024
