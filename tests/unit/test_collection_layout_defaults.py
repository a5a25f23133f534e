"""Collections created without a cluster layout take the server's defaults; a request's own
shard_number, replication_factor and write_consistency_factor win."""

from __future__ import annotations

from embedserve.connectors.types import Distance
from embedserve.server import vector_convert as vc
from embedserve.server.config import Settings
from embedserve.v1 import vector_pb2 as pb

LAYOUT = vc.CollectionLayout(
    default_shard_number=3, default_replication_factor=2, default_write_consistency_factor=1
)


def layout(config: pb.CollectionConfig) -> tuple[int, int, int]:
    spec = vc.spec_from_proto(
        "docs", config, model_width=384, model_distance=Distance.COSINE, layout=LAYOUT
    )
    return spec.shard_number, spec.replication_factor, spec.write_consistency_factor


def test_unset_fields_take_the_defaults() -> None:
    assert layout(pb.CollectionConfig()) == (3, 2, 1)


def test_fields_the_request_sets_win() -> None:
    config = pb.CollectionConfig(shard_number=1, write_consistency_factor=2)
    assert layout(config) == (1, 2, 2)


def test_no_defaults_keeps_one_shard_one_copy() -> None:
    spec = vc.spec_from_proto(
        "docs", pb.CollectionConfig(), model_width=384, model_distance=Distance.COSINE
    )
    assert (spec.shard_number, spec.replication_factor) == (1, 1)


def test_settings_read_the_layout_from_the_environment() -> None:
    env = {"EMBEDSERVE_DEFAULT_SHARD_NUMBER": "6", "EMBEDSERVE_DEFAULT_REPLICATION_FACTOR": "3"}
    settings = Settings.from_sources(env=env)
    assert (settings.default_shard_number, settings.default_replication_factor) == (6, 3)
    assert settings.default_write_consistency_factor == 1
