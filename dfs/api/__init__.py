"""The API coordinator (``dfs-api``)."""
