"""The collection's settings that ``export`` writes beside a JSONL file, so that ``ingest``
of that file into a missing collection makes it as it was (vector size, distance, payload
indexes, keyword vectors, quantization, HNSW and sharding) instead of with the defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from embedserve.client._vector_calls import config_kwargs
from embedserve.v1 import vector_pb2 as pb

SUFFIX = ".collection.json"


def settings_path(data_file: str) -> Path:
    return Path(data_file + SUFFIX)


def settings_text(info: pb.CollectionInfo) -> str:
    """What ``export`` writes at ``settings_path``: the collection's name, model and
    config."""
    saved = {
        "collection": info.name,
        "model_id": info.model_id,
        "model_fingerprint": info.model_fingerprint,
        "config": MessageToDict(info.config),
    }
    return json.dumps(saved, indent=2) + "\n"


@dataclass(frozen=True)
class SavedSettings:
    create_kwargs: dict[str, Any]  # create_collection's keyword arguments
    model_id: str
    model_fingerprint: str  # "" where the collection had none recorded


def read_settings(data_file: str) -> SavedSettings | None:
    """The settings saved beside ``data_file``; None without."""
    path = settings_path(data_file)
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text("utf-8"))
        config = ParseDict(saved["config"], pb.CollectionConfig())
        model_id, fingerprint = (
            str(saved.get("model_id", "")),
            str(saved.get("model_fingerprint", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError, ParseError) as exc:
        raise ValueError(f"{path}: not a collection's settings ({exc})") from exc
    return SavedSettings(config_kwargs(config), model_id, fingerprint)
