"""The SQLite namespace stores a version's metadata, tags, headers and sharing as compact
JSON, encoded by orjson; what orjson refuses (a lone surrogate) is written by the standard
encoder, and either reads back as it was given, by a single link and by a batch's."""

from __future__ import annotations

from pathlib import Path

from dfs.meta import open_metadata_store
from dfs.meta.namespace import NewObject
from tests.contract.test_namespace_store import Store, bucket, cid, make_file


async def test_fields_round_trip_whatever_their_characters(tmp_path: Path) -> None:
    ns: Store = await open_metadata_store(f"sqlite://{tmp_path / 'meta.db'}")  # type: ignore[assignment]
    try:
        await bucket(ns, "js")
        odd = {
            "ascii": ("k", "v"),
            "accents": ("clé", "été ☃ 𝄞"),
            "surrogate": ("lone", "\ud800 half"),
            "quotes": ('"q"', "back\\slash\nline"),
        }
        for n, (label, pair) in enumerate(odd.items()):
            f = await make_file(ns, "t1", [(cid(("js", label)), 10)])
            fields = {
                "user_metadata": (pair,),
                "tags": (pair, ("z", "last")),
                "shared_with": ("tenant-é", pair[1]),
                "headers": (("content-disposition", pair[1]),),
            }
            one = await ns.put_object(NewObject("js", f"one/{n}", f.file_id, 10, **fields), 1.0)
            g = await make_file(ns, "t1", [(cid(("js-batch", label)), 10)])
            (many,) = await ns.put_objects(
                [NewObject("js", f"many/{n}", g.file_id, 10, **fields)], 1.0
            )
            assert not isinstance(many, Exception)
            for made in (one.version, many.version):
                read = await ns.get_object("js", made.key)
                assert read == made
                assert read.user_metadata == (pair,)
                assert read.tags == tuple(sorted((pair, ("z", "last"))))
                assert read.shared_with == tuple(sorted({"tenant-é", pair[1]}))
                assert read.headers == (("content-disposition", pair[1]),)
    finally:
        await ns.close()
