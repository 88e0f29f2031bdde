"""``dfs-s3``: an S3-compatible gateway (issue 14, a first slice; docs/S3.md says what it
supports). A stateless aiohttp service over the same metadata store and data path as
``dfs-api``: it uses the API's services (coordinator, ingest, namespace, file streaming),
never the API's app or routes."""
