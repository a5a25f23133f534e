"""Restoring an export checks that it holds the served model's vectors, by the fingerprints
GetModelInfo names, without a server."""

from __future__ import annotations

import pytest

from embedserve.client.cli_settings_file import SavedSettings
from embedserve.client.cli_vectors import _refuse_other_model
from embedserve.v1 import embedding_pb2, vector_pb2

SERVED = embedding_pb2.GetModelInfoResponse(
    model_id="tuned",
    fingerprint="current",
    former_fingerprint="former",
    former_fingerprints=["former", "former-with-report"],
)


@pytest.mark.parametrize("recorded", ["current", "former", "former-with-report"])
def test_any_fingerprint_naming_the_served_model_restores(recorded: str) -> None:
    saved = SavedSettings({}, "tuned", recorded)
    made = vector_pb2.CollectionInfo(model_id="tuned", model_fingerprint="current")
    _refuse_other_model("x.jsonl", saved, made, "the collection", lambda: SERVED)


def test_another_models_export_is_refused() -> None:
    saved = SavedSettings({}, "other", "elsewhere")
    made = vector_pb2.CollectionInfo(model_id="tuned", model_fingerprint="current")
    with pytest.raises(ValueError, match="restore it on a server of that model"):
        _refuse_other_model("x.jsonl", saved, made, "the collection", lambda: SERVED)
