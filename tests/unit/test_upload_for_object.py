"""``"for_object"`` in an init-upload body (``dfs-client sync``): the pending file is made
marked for the object its uploader links next (``FileRecord.for_object``); optional, and a
boolean only."""

from __future__ import annotations

from typing import Any

import pytest

from dfs.api.bodies import UploadRequest, parse_for_object
from dfs.errors import InvalidRequest
from tests.unit.test_file_modes import body


def test_for_object_is_optional_and_goes_to_the_record() -> None:
    assert not UploadRequest.parse(body()).record("id", "t", 1.0).for_object
    assert UploadRequest.parse(body(for_object=True)).record("id", "t", 1.0).for_object
    assert not UploadRequest.parse(body(for_object=False)).for_object


@pytest.mark.parametrize("value", [1, "true", None, [True]])
def test_for_object_must_be_a_boolean(value: Any) -> None:
    with pytest.raises(InvalidRequest):
        UploadRequest.parse(body(for_object=value))


def test_a_paged_uploads_for_object_is_read_as_init_uploads() -> None:
    """``/paged-upload``'s body takes the same ``for_object`` (``parse_for_object``)."""
    assert parse_for_object({}) is False
    assert parse_for_object({"for_object": True}) is True
    for value in (None, 1, "true"):
        with pytest.raises(InvalidRequest):
            parse_for_object({"for_object": value})
