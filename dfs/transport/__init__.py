"""The internal HTTP transport: typed async clients of the two services' endpoints.

``ApiClient`` (``api_client``) speaks to ``dfs-api``; ``NodeClient`` (``node_client``) speaks to
``dfs-node``; ``http`` holds the shared session, timeout and error-mapping plumbing. The client
library, the API (which asks nodes what they hold and proxies chunks) and the nodes (which
forward replicas and send heartbeats) all use this package, so it belongs to none of them.
Imports aiohttp's client only: never ``aiohttp.web``, click or boto3.
"""
