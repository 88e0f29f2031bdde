"""The storage node daemon (``dfs-node``)."""
