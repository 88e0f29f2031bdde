"""The OpenAPI 3.1 descriptions of the two HTTP services, kept beside the code they describe.

``api.yaml`` describes ``dfs-api``, ``node.yaml`` describes ``dfs-node``. They are data, not
code: ``tests/integration/test_openapi.py`` checks that every route in each aiohttp router is
in its spec and vice versa, and that real answers validate against the schemas;
``tests/integration/test_schemathesis.py`` fuzzes the running API from ``api.yaml``.
"""

from __future__ import annotations

from pathlib import Path

SPEC_DIR = Path(__file__).parent
API_SPEC = SPEC_DIR / "api.yaml"
NODE_SPEC = SPEC_DIR / "node.yaml"
