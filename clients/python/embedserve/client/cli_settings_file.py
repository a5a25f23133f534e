"""The collection's settings that ``export`` writes beside a JSONL file, so that ``ingest``
of that file into a missing collection makes it as it was (vector size, distance, payload
indexes, keyword vectors, quantization, HNSW and sharding) instead of with the defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from embedserve.client._vector_calls import config_kwargs
from embedserve.client.cli_output import replaced_when_done
from embedserve.v1 import vector_pb2 as pb

SUFFIX = ".collection.json"


def settings_path(data_file: str) -> Path:
    return Path(data_file + SUFFIX)


def write_settings(data_file: str, info: pb.CollectionInfo) -> Path:
    path = settings_path(data_file)
    saved = {"collection": info.name, "config": MessageToDict(info.config)}
    with replaced_when_done(str(path)) as out:
        out.write(json.dumps(saved, indent=2) + "\n")
    return path


def read_settings(data_file: str) -> dict[str, Any] | None:
    """``create_collection``'s keyword arguments saved beside ``data_file``; None without."""
    path = settings_path(data_file)
    if not path.is_file():
        return None
    try:
        config = ParseDict(json.loads(path.read_text("utf-8"))["config"], pb.CollectionConfig())
    except (ValueError, KeyError, TypeError, ParseError) as exc:
        raise ValueError(f"{path}: not a collection's settings ({exc})") from exc
    return config_kwargs(config)
