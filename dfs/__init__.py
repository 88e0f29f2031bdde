"""dfs: a chunked, content-addressed, replicated file store."""

__version__ = "0.1.0"
