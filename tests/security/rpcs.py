"""One minimal call of every API RPC, so tests can sweep a key over the whole surface."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc

from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

Metadata = Sequence[tuple[str, str]]
Call = Callable[[grpc.Channel, Metadata, str], object]

E = "/embedserve.v1.EmbeddingService/"
V = "/embedserve.v1.VectorService/"


def _doc(i: int) -> vpb.Document:
    return vpb.Document(id=f"d{i}", text=f"document number {i}")


def _e(channel: grpc.Channel) -> epb_grpc.EmbeddingServiceStub:
    return epb_grpc.EmbeddingServiceStub(channel)


def _v(channel: grpc.Channel) -> vpb_grpc.VectorServiceStub:
    return vpb_grpc.VectorServiceStub(channel)


# method -> call(channel, metadata, collection). Collections named "scratch-*" are the
# ones a call may create or delete; the others read or write an existing collection.
CALLS: dict[str, Call] = {
    E + "Embed": lambda ch, md, c: _e(ch).Embed(epb.EmbedRequest(inputs=["hi"]), metadata=md),
    E + "EmbedStream": lambda ch, md, c: list(
        _e(ch).EmbedStream(iter([epb.EmbedStreamRequest(inputs=["hi"])]), metadata=md)
    ),
    E + "EmbedTokens": lambda ch, md, c: _e(ch).EmbedTokens(
        epb.EmbedTokensRequest(inputs=["hi"]), metadata=md
    ),
    E + "Tokenize": lambda ch, md, c: _e(ch).Tokenize(
        epb.TokenizeRequest(inputs=["hi"]), metadata=md
    ),
    E + "Similarity": lambda ch, md, c: _e(ch).Similarity(
        epb.SimilarityRequest(query_candidates=epb.QueryCandidates(query="a", candidates=["b"])),
        metadata=md,
    ),
    E + "GetModelInfo": lambda ch, md, c: _e(ch).GetModelInfo(
        epb.GetModelInfoRequest(), metadata=md
    ),
    E + "Rerank": lambda ch, md, c: _e(ch).Rerank(
        epb.RerankRequest(query="a", documents=["b", "c"]), metadata=md
    ),
    V + "CreateCollection": lambda ch, md, c: _v(ch).CreateCollection(
        vpb.CreateCollectionRequest(name="scratch-" + c), metadata=md
    ),
    V + "UpdateCollection": lambda ch, md, c: _v(ch).UpdateCollection(
        vpb.UpdateCollectionRequest(name=c, hnsw_ef=64), metadata=md
    ),
    V + "DeleteCollection": lambda ch, md, c: _v(ch).DeleteCollection(
        vpb.DeleteCollectionRequest(name="scratch-" + c), metadata=md
    ),
    V + "ListCollections": lambda ch, md, c: _v(ch).ListCollections(
        vpb.ListCollectionsRequest(), metadata=md
    ),
    V + "GetCollection": lambda ch, md, c: _v(ch).GetCollection(
        vpb.GetCollectionRequest(name=c), metadata=md
    ),
    V + "Upsert": lambda ch, md, c: _v(ch).Upsert(
        vpb.UpsertRequest(collection=c, documents=[_doc(1)]), metadata=md
    ),
    V + "Ingest": lambda ch, md, c: _v(ch).Ingest(
        iter([vpb.IngestRequest(collection=c, documents=[_doc(2)])]), metadata=md
    ),
    V + "IngestStream": lambda ch, md, c: list(
        _v(ch).IngestStream(
            iter([vpb.IngestStreamRequest(batch_id="b", collection=c, documents=[_doc(3)])]),
            metadata=md,
        )
    ),
    V + "Search": lambda ch, md, c: _v(ch).Search(
        vpb.SearchRequest(collection=c, text="number"), metadata=md
    ),
    V + "SearchBatch": lambda ch, md, c: _v(ch).SearchBatch(
        vpb.SearchBatchRequest(collection=c, searches=[vpb.SearchRequest(text="number")]),
        metadata=md,
    ),
    V + "Recommend": lambda ch, md, c: _v(ch).Recommend(
        vpb.RecommendRequest(collection=c, positive=[vpb.Example(text="number")]), metadata=md
    ),
    V + "Get": lambda ch, md, c: _v(ch).Get(vpb.GetRequest(collection=c, ids=["d1"]), metadata=md),
    V + "Delete": lambda ch, md, c: _v(ch).Delete(
        vpb.DeleteRequest(collection=c, ids=["nope"]), metadata=md
    ),
    V + "Count": lambda ch, md, c: _v(ch).Count(vpb.CountRequest(collection=c), metadata=md),
    V + "Facet": lambda ch, md, c: _v(ch).Facet(
        vpb.FacetRequest(collection=c, key="topic"), metadata=md
    ),
    V + "UpdatePayload": lambda ch, md, c: _v(ch).UpdatePayload(
        vpb.UpdatePayloadRequest(
            collection=c,
            filter=vpb.Filter(must=[vpb.Condition(has_id=vpb.HasId(ids=["nope"]))]),
            payload={"seen": True},
        ),
        metadata=md,
    ),
    V + "Scroll": lambda ch, md, c: _v(ch).Scroll(vpb.ScrollRequest(collection=c), metadata=md),
    V + "Cluster": lambda ch, md, c: _v(ch).Cluster(
        vpb.ClusterRequest(collection=c, k=1), metadata=md
    ),
    V + "FindDuplicates": lambda ch, md, c: _v(ch).FindDuplicates(
        vpb.FindDuplicatesRequest(collection=c), metadata=md
    ),
    V + "UpdateAliases": lambda ch, md, c: _v(ch).UpdateAliases(
        vpb.UpdateAliasesRequest(set={"alias-" + c: c}), metadata=md
    ),
    V + "ListAliases": lambda ch, md, c: _v(ch).ListAliases(
        vpb.ListAliasesRequest(collection=c), metadata=md
    ),
}


def code_of(
    call: Call, channel: grpc.Channel, metadata: Metadata, collection: str
) -> grpc.StatusCode:
    try:
        call(channel, metadata, collection)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def bearer(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)
