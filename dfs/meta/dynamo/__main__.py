"""``python -m dfs.meta.dynamo``: print the DynamoDB schema as JSON (tables, keys, indexes, TTL).

Here rather than under ``schema``'s ``__main__`` guard: running a submodule of this package
as a script would import it twice (the package imports it first), which runpy warns about.
"""

from dfs.meta.dynamo.schema import schema_json

if __name__ == "__main__":  # not when imported, e.g. by the layering test
    print(schema_json())
