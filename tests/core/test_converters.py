"""Every protobuf converter, both ways, with the field names its errors must carry."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from harness import exactly

from embedserve.client._vector_calls import collection_config, config_kwargs
from embedserve.connectors import types as st
from embedserve.server import convert, similarity
from embedserve.server import vector_convert as vc
from embedserve.server.embedder import EmbedParams, EmbedResult, Task, Timings
from embedserve.server.errors import InvalidArgument, NotFound
from embedserve.server.model_spec import PoolingMode
from embedserve.server.tokenization import Overflow
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import vector_pb2 as pb

COSINE = st.Distance.COSINE


def test_embed_options_map_every_enum_and_optional_field() -> None:
    assert convert.params_from_proto(epb.EmbedOptions()) == EmbedParams()
    options = epb.EmbedOptions(
        task=epb.TASK_QUERY,
        prompt="",
        dimensions=8,
        pooling=epb.POOLING_LAST_TOKEN,
        normalize=False,
        overflow=epb.OVERFLOW_POLICY_CHUNK,
    )
    assert convert.params_from_proto(options) == EmbedParams(
        Task.QUERY, "", 8, PoolingMode.LAST_TOKEN, False, Overflow.CHUNK
    )
    for value, task in convert.TASKS.items():
        assert convert.params_from_proto(epb.EmbedOptions(task=value)).task is task
    for value, overflow in convert.OVERFLOWS.items():
        assert convert.params_from_proto(epb.EmbedOptions(overflow=value)).overflow is overflow
    for mode, value in convert.POOLING_TO_PROTO.items():
        assert convert.params_from_proto(epb.EmbedOptions(pooling=value)).pooling is mode


@pytest.mark.parametrize("field", ["task", "pooling", "overflow"])
def test_unknown_enum_values_name_their_field(field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"requests\[2\]\.{field} has the unknown value 99"):
        convert.params_from_proto(epb.EmbedOptions(**{field: 99}), "requests[2]")


def test_embed_results_and_timings_to_proto() -> None:
    vectors = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    timings = Timings(queue_ms=1.0, tokenize_ms=2.0, inference_ms=3.0, total_ms=4.0)
    result = EmbedResult(vectors, [3, 9], [False, True], [1, 2], timings)
    embeddings = convert.embeddings_to_proto(result)
    assert [list(e.values) for e in embeddings] == vectors.tolist()
    assert [(e.token_count, e.truncated, e.chunk_count) for e in embeddings] == [
        (3, False, 1),
        (9, True, 2),
    ]
    proto = convert.timings_to_proto(timings)
    assert (proto.queue_ms, proto.tokenize_ms, proto.inference_ms, proto.total_ms) == (1, 2, 3, 4)
    assert result.total_tokens == 12


def test_cosine_is_row_wise_and_scale_free() -> None:
    a = np.array([[1.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([[10.0, 0.0], [-4.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(similarity.cosine(a, b), [1.0, 0.0], atol=1e-7)


def test_collection_config_round_trips_through_the_store_spec() -> None:
    config = pb.CollectionConfig(
        dimensions=64,
        distance=pb.DISTANCE_DOT,
        on_disk=True,
        hnsw_m=8,
        hnsw_ef_construct=50,
        hnsw_ef=77,
        quantization=pb.QUANTIZATION_SCALAR_INT8,
        vector_datatype=pb.VECTOR_DATATYPE_FLOAT16,
        shard_number=3,
        replication_factor=2,
        write_consistency_factor=2,
        full_scan_threshold_kb=123,
        payload_indexes={
            "topic": pb.PAYLOAD_INDEX_KIND_KEYWORD,
            "n": pb.PAYLOAD_INDEX_KIND_INTEGER,
        },
        bm25=True,
        bm25_language="german",
    )
    spec = vc.spec_from_proto("c", config, model_width=384, model_distance=COSINE)
    assert (spec.bm25, spec.bm25_language) == (True, "german")
    assert (spec.vector_size, spec.distance, spec.on_disk) == (64, st.Distance.DOT, True)
    assert (spec.hnsw_m, spec.hnsw_ef_construct, spec.hnsw_ef) == (8, 50, 77)
    assert spec.quantization is st.Quantization.SCALAR_INT8
    assert spec.datatype is st.VectorDatatype.FLOAT16
    assert (spec.shard_number, spec.replication_factor, spec.write_consistency_factor) == (3, 2, 2)
    assert spec.payload_indexes == {
        "topic": st.PayloadIndexKind.KEYWORD,
        "n": st.PayloadIndexKind.INTEGER,
    }
    back = vc.info_to_proto(st.CollectionInfo(spec, points_count=5))
    assert back.name == "c" and back.points_count == 5
    assert back.config == config
    # The client's inverse (what `embedserve reembed` copies): every field, set or not.
    assert collection_config(**config_kwargs(config)) == config
    bare = pb.CollectionConfig(distance=pb.DISTANCE_EUCLID)
    assert collection_config(**config_kwargs(bare)) == bare
    binary = pb.CollectionConfig(quantization=pb.QUANTIZATION_BINARY)
    spec = vc.spec_from_proto("b", binary, model_width=384, model_distance=COSINE)
    assert spec.quantization is st.Quantization.BINARY
    back = vc.info_to_proto(st.CollectionInfo(spec, points_count=0))
    assert back.config.quantization == pb.QUANTIZATION_BINARY
    assert collection_config(**config_kwargs(binary)) == binary
    # A uint8 collection made elsewhere reads back as such; re-embedding it makes a float32 one.
    made_elsewhere = st.CollectionSpec("u", 8, COSINE, datatype=st.VectorDatatype.UINT8)
    back = vc.info_to_proto(st.CollectionInfo(made_elsewhere, points_count=0))
    assert back.config.vector_datatype == pb.VECTOR_DATATYPE_UINT8
    assert "vector_datatype" not in config_kwargs(back.config)


def test_collection_defaults_and_bad_configs() -> None:
    spec = vc.spec_from_proto("c", pb.CollectionConfig(), model_width=384, model_distance=COSINE)
    assert spec == st.CollectionSpec("c", 384, COSINE)
    with pytest.raises(InvalidArgument, match=r"config\.dimensions must be at least 1"):
        vc.spec_from_proto("c", pb.CollectionConfig(dimensions=0), 384, COSINE)
    with pytest.raises(InvalidArgument, match=r"config\.distance has the unknown value 42"):
        vc.spec_from_proto("c", pb.CollectionConfig(distance=42), 384, COSINE)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="hnsw_m"):
        vc.spec_from_proto("c", pb.CollectionConfig(hnsw_m=0), 384, COSINE)


def test_payloads_round_trip_with_whole_numbers_as_integers() -> None:
    payload = {"n": 3, "x": 2.5, "tags": ["a", 1], "inner": {"ok": True, "k": 7}, "none": None}
    back = vc.payload_from_proto(vc.payload_to_proto(payload))
    assert back == payload
    assert isinstance(back["n"], int) and isinstance(back["inner"]["k"], int)
    # A NaN or an infinity is named where it is, as the HTTP routes name it.
    for bad, where in [
        ({"bad": math.nan}, "bad"),
        ({"ok": 1, "inner": {"list": [1, [2, -math.inf]]}}, "inner.list[1][1]"),
    ]:
        struct = vc.payload_to_proto(bad)
        with pytest.raises(InvalidArgument) as refused:
            vc.payload_from_proto(struct, "documents[4].payload")
        assert refused.value.message == f"documents[4].payload.{where}: numbers must be finite"


def test_documents_and_write_options() -> None:
    documents = [
        pb.Document(id="t", text="hello", payload=vc.payload_to_proto({"k": 1})),
        pb.Document(id="v", vector=pb.Vector(values=[0.5, 1.5])),
    ]
    first, second = vc.documents_from_proto(documents)
    assert (first.id, first.text, first.vector, first.payload) == ("t", "hello", None, {"k": 1})
    assert (second.id, second.text, second.vector, second.payload) == ("v", None, [0.5, 1.5], {})
    settings = vc.write_settings(pb.WriteOptions(store_text=True))
    assert settings.store_text and settings.embed.task is Task.DOCUMENT
    explicit = vc.write_settings(pb.WriteOptions(embed=epb.EmbedOptions(prompt="p: ")))
    assert explicit.embed.task is Task.DEFAULT and explicit.embed.prompt == "p: "


def test_every_filter_condition_converts() -> None:
    message = pb.Filter(
        must=[
            pb.Condition(match=pb.MatchValue(key="topic", text="space")),
            pb.Condition(match_any=pb.MatchAny(key="n", integers=[1, 2])),
            pb.Condition(range=pb.RangeCondition(key="x", gte=1.0, lt=2.0)),
        ],
        should=[
            pb.Condition(is_null=pb.IsNull(key="gone")),
            pb.Condition(has_id=pb.HasId(ids=["a", "b"])),
        ],
        must_not=[
            pb.Condition(
                filter=pb.Filter(must=[pb.Condition(match=pb.MatchValue(key="f", boolean=True))])
            )
        ],
    )
    parsed = vc.filter_from_proto(message)
    assert parsed.must == (
        st.MatchValue("topic", "space"),
        st.MatchAny("n", (1, 2)),
        st.Range("x", gte=1.0, lt=2.0),
    )
    assert parsed.should == (st.IsNull("gone"), st.HasId(("a", "b")))
    assert parsed.must_not == (st.Filter(must=(st.MatchValue("f", True),)),)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (pb.Condition(), r"filter\.must\[0\] has no condition set"),
        (pb.Condition(match=pb.MatchValue(key="k")), r"filter\.must\[0\]\.match needs"),
        (
            pb.Condition(match_any=pb.MatchAny(key="k", texts=["a"], integers=[1])),
            "texts or integers, not both",
        ),
        (pb.Condition(match=pb.MatchValue(key="", text="a")), "key"),
    ],
)
def test_bad_conditions_name_their_place(condition: pb.Condition, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        vc.filter_from_proto(pb.Filter(must=[condition]))


def test_optional_filter_is_none_when_absent_or_empty() -> None:
    assert vc.optional_filter(pb.SearchRequest()) is None
    assert vc.optional_filter(pb.SearchRequest(filter=pb.Filter())) is None


def test_query_params_defaults_and_bounds() -> None:
    assert vc.search_params(pb.QueryParams()) == st.SearchParams()
    params = vc.search_params(
        pb.QueryParams(
            limit=3,
            offset=2,
            score_threshold=0.5,
            with_payload=False,
            with_vectors=True,
            exact=True,
            hnsw_ef=64,
            read_consistency="majority",
            oversampling=2.5,
        )
    )
    assert params == st.SearchParams(
        limit=3,
        offset=2,
        score_threshold=0.5,
        with_payload=False,
        with_vectors=True,
        exact=True,
        hnsw_ef=64,
        read_consistency="majority",
        oversampling=2.5,
    )
    with pytest.raises(InvalidArgument, match="oversampling must be from 1 to 100"):
        vc.search_params(pb.QueryParams(oversampling=101))
    with pytest.raises(InvalidArgument, match=r"params\.limit must be at least 1"):
        vc.search_params(pb.QueryParams(limit=0))
    with pytest.raises(InvalidArgument, match=r"params\.hnsw_ef must be at least 1"):
        vc.search_params(pb.QueryParams(hnsw_ef=0))
    with pytest.raises(InvalidArgument, match="read_consistency"):
        vc.search_params(pb.QueryParams(read_consistency="most"))
    for threshold in (math.nan, math.inf):  # NaN would have found nothing, silently
        with pytest.raises(InvalidArgument, match="score_threshold must be a finite number"):
            vc.search_params(pb.QueryParams(score_threshold=threshold))


def test_results_to_proto() -> None:
    scored = vc.scored_to_proto(
        [st.ScoredPoint("a", 0.75, {"k": 1}, [1.0, 2.0]), st.ScoredPoint("b", 0.5)]
    )
    assert [(s.id, s.score) for s in scored] == [("a", 0.75), ("b", 0.5)]
    assert vc.payload_from_proto(scored[0].payload) == {"k": 1}
    assert list(scored[0].vector.values) == [1.0, 2.0] and not scored[1].HasField("vector")
    record = vc.record_to_proto(st.Record("r", {"t": "x"}, None))
    assert record.id == "r" and not record.HasField("vector")
    assert vc.payload_from_proto(record.payload) == {"t": "x"}


def test_store_errors_join_the_status_table() -> None:
    from embedserve.connectors import errors as store_errors
    from embedserve.server.vectors import translate_store_error

    assert isinstance(translate_store_error(store_errors.CollectionNotFound("c")), NotFound)
    assert isinstance(translate_store_error(store_errors.InvalidRequest("x")), InvalidArgument)


def test_every_error_names_its_field_in_full() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: vc.spec_from_proto("c", pb.CollectionConfig(quantization=7), 384, COSINE),  # type: ignore[arg-type]
            "config.quantization has the unknown value 7",
        ),
        (
            lambda: vc.spec_from_proto(
                "c",
                pb.CollectionConfig(payload_indexes={"topic": 9}),  # type: ignore[dict-item]
                384,
                COSINE,
            ),
            "config.payload_indexes['topic'] has the unknown value 9",
        ),
        (
            lambda: vc.spec_from_proto("c", pb.CollectionConfig(dimensions=0), 384, COSINE),
            "config.dimensions must be at least 1",
        ),
        (
            lambda: vc.payload_from_proto(vc.payload_to_proto({"bad": math.inf})),
            "payload.bad: ",
        ),
        (
            lambda: vc.write_settings(pb.WriteOptions(embed=epb.EmbedOptions(pooling=5))),  # type: ignore[arg-type]
            "options.embed.pooling has the unknown value 5",
        ),
        (
            lambda: vc.documents_from_proto(
                [
                    pb.Document(id="a"),
                    pb.Document(id="b", payload=vc.payload_to_proto({"x": math.nan})),
                ]
            ),
            "documents[1].payload.x: ",
        ),
        (lambda: vc.search_params(pb.QueryParams(limit=0)), "params.limit must be at least 1"),
        (lambda: vc.search_params(pb.QueryParams(hnsw_ef=0)), "params.hnsw_ef must be at least 1"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidArgument) as caught:
            call()
        # The message starts with the field, spelled in full (the payload cases then quote
        # the JSON error, which is protobuf's wording).
        assert caught.value.message.startswith(message), caught.value.message
        if not message.endswith(": "):
            assert caught.value.message == message


def test_nested_filter_errors_name_their_full_path() -> None:
    empty = pb.Condition()
    nested = pb.Condition(filter=pb.Filter(must_not=[empty]))
    for message, path in [
        (pb.Filter(should=[empty]), "filter.should[0]"),
        (pb.Filter(must_not=[empty]), "filter.must_not[0]"),
        (
            pb.Filter(must=[pb.Condition(is_null=pb.IsNull(key="k")), nested]),
            "filter.must[1].filter.must_not[0]",
        ),
    ]:
        with pytest.raises(InvalidArgument, match=exactly(f"{path} has no condition set")):
            vc.optional_filter(pb.SearchRequest(filter=message))


def test_optional_filter_keeps_a_filter_that_has_conditions() -> None:
    condition = pb.Condition(match=pb.MatchValue(key="topic", text="space"))
    parsed = vc.optional_filter(pb.SearchRequest(filter=pb.Filter(must=[condition])))
    assert parsed == st.Filter(must=(st.MatchValue("topic", "space"),))


def test_values_count_nested_and_min_should_convert() -> None:
    inner = pb.Filter(must=[pb.Condition(match=pb.MatchValue(key="by", text="ana"))])
    message = pb.Filter(
        must=[pb.Condition(values_count=pb.ValuesCount(key="tags", gte=2, lt=5))],
        min_should=pb.MinShould(
            conditions=[
                pb.Condition(nested=pb.Nested(key="reviews", filter=inner)),
                pb.Condition(is_empty=pb.IsEmpty(key="tags")),
            ],
            min_count=1,
        ),
    )
    parsed = vc.filter_from_proto(message)
    assert parsed.must == (st.ValuesCount("tags", gte=2, lt=5),)
    assert parsed.min_should == st.MinShould(
        (st.Nested("reviews", st.Filter(must=(st.MatchValue("by", "ana"),))), st.IsEmpty("tags")),
        1,
    )
    assert not parsed.is_empty()
    only_least = pb.Filter(min_should=message.min_should)
    assert vc.optional_filter(pb.SearchRequest(filter=only_least)) is not None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (pb.Filter(must=[pb.Condition(values_count=pb.ValuesCount(key="k"))]), "at least one"),
        (
            pb.Filter(
                must=[
                    pb.Condition(
                        nested=pb.Nested(
                            key="r",
                            filter=pb.Filter(must=[pb.Condition(has_id=pb.HasId(ids=["a"]))]),
                        )
                    )
                ]
            ),
            "has_id cannot be used inside a nested filter",
        ),
        (pb.Filter(must=[pb.Condition(nested=pb.Nested(key="r"))]), "needs a filter"),
        (
            pb.Filter(
                min_should=pb.MinShould(
                    conditions=[pb.Condition(is_null=pb.IsNull(key="k"))], min_count=2
                )
            ),
            "min_count must be from 1 to its 1 conditions, got 2",
        ),
        (
            pb.Filter(min_should=pb.MinShould(conditions=[pb.Condition()], min_count=1)),
            r"filter\.min_should\.conditions\[0\] has no condition set",
        ),
        (
            pb.Filter(
                must=[
                    pb.Condition(nested=pb.Nested(key="r", filter=pb.Filter(must=[pb.Condition()])))
                ]
            ),
            r"filter\.must\[0\]\.nested\.filter\.must\[0\] has no condition set",
        ),
    ],
)
def test_bad_counts_nests_and_least_counts_are_refused(message: pb.Filter, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        vc.filter_from_proto(message)


def test_except_any_word_and_polygon_conditions_convert() -> None:
    ring = pb.GeoRing(
        corners=[pb.GeoPoint(lat=lat, lon=lon) for lat, lon in [(1, 0), (1, 1), (0, 1)]]
    )
    hole = pb.GeoRing(
        corners=[pb.GeoPoint(lat=lat, lon=lon) for lat, lon in [(0.6, 0.5), (0.6, 0.6), (0.5, 0.6)]]
    )
    message = pb.Filter(
        must=[
            pb.Condition(match_except=pb.MatchExcept(key="lang", texts=["de", "fr"])),
            pb.Condition(match_text_any=pb.MatchTextAny(key="title", text="fox dog")),
            pb.Condition(geo_polygon=pb.GeoPolygon(key="at", exterior=ring, interiors=[hole])),
        ]
    )
    parsed = vc.filter_from_proto(message)
    corners = (st.GeoPoint(1, 0), st.GeoPoint(1, 1), st.GeoPoint(0, 1))
    holed = (st.GeoPoint(0.6, 0.5), st.GeoPoint(0.6, 0.6), st.GeoPoint(0.5, 0.6))
    assert parsed.must == (
        st.MatchExcept("lang", ("de", "fr")),
        st.MatchTextAny("title", "fox dog"),
        st.GeoPolygon("at", (*corners, corners[0]), ((*holed, holed[0]),)),
    )
    both = pb.MatchExcept(key="n", texts=["a"], integers=[1])
    with pytest.raises(InvalidArgument, match=r"filter\.must\[0\]\.match_except takes texts or"):
        vc.filter_from_proto(pb.Filter(must=[pb.Condition(match_except=both)]))
    without_ring = pb.Condition(geo_polygon=pb.GeoPolygon(key="at"))
    with pytest.raises(InvalidArgument, match="exterior needs 3 or more different corners, got 0"):
        vc.filter_from_proto(pb.Filter(must=[without_ring]))


def test_values_count_admits_zero_only_where_its_bounds_do() -> None:
    assert st.ValuesCount("k", lt=1).admits_zero()
    assert st.ValuesCount("k", lte=0, gte=0).admits_zero()
    assert not st.ValuesCount("k", gte=1).admits_zero()
    assert not st.ValuesCount("k", gt=0, lt=3).admits_zero()
    assert not st.ValuesCount("k", lt=0).admits_zero()


def test_match_any_takes_texts_or_integers() -> None:
    texts = pb.Filter(must=[pb.Condition(match_any=pb.MatchAny(key="t", texts=["a", "b"]))])
    assert vc.filter_from_proto(texts).must == (st.MatchAny("t", ("a", "b")),)


def test_server_defaults_fill_only_the_tuning_fields_a_request_leaves_unset() -> None:
    layout = vc.CollectionLayout(default_shard_number=3, default_replication_factor=2)
    spec = vc.spec_from_proto("c", pb.CollectionConfig(shard_number=5), 384, COSINE, layout)
    assert spec.shard_number == 5  # the request wins
    assert spec.replication_factor == 2  # the server's default
    assert spec.hnsw_m == st.CollectionSpec("c", 384, COSINE).hnsw_m  # neither: the store's own


def test_stored_records_keep_their_vectors() -> None:
    record = vc.record_to_proto(st.Record("r", None, [0.25, -1.0]))
    assert record.HasField("vector") and list(record.vector.values) == [0.25, -1.0]


def test_queries_and_examples_convert_each_kind() -> None:
    by_text = vc.query_from_proto(pb.SearchRequest(text="planets"))
    by_vector = vc.query_from_proto(pb.SearchRequest(vector=pb.Vector(values=[1.0, 2.0])))
    assert (by_text.text, by_text.vector, by_text.id) == ("planets", None, None)
    assert (by_vector.text, by_vector.vector, by_vector.id) == (None, [1.0, 2.0], None)
    examples = [
        pb.Example(text="moons"),
        pb.Example(vector=pb.Vector(values=[0.5])),
        pb.Example(id="doc-7"),
    ]
    converted = [vc.example_from_proto(e) for e in examples]
    assert [(e.text, e.vector, e.id) for e in converted] == [
        ("moons", None, None),
        (None, [0.5], None),
        (None, None, "doc-7"),
    ]


def test_params_name_the_default_field() -> None:
    with pytest.raises(InvalidArgument, match=exactly("options.task has the unknown value 99")):
        convert.params_from_proto(epb.EmbedOptions(task=99))  # type: ignore[arg-type]
