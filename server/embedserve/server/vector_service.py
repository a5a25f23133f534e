"""VectorService: translates protobuf to VectorCore calls; the core does the work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from embedserve.server import analysis_convert as ac
from embedserve.server import convert
from embedserve.server import vector_convert as vc
from embedserve.server.analysis import AnalysisCore
from embedserve.server.drain import Drain
from embedserve.server.embedder import Task
from embedserve.server.errors import NotReady, named
from embedserve.server.ingestion import (
    IngestMessage,
    IngestPipeline,
    IngestSettings,
    message_name,
)
from embedserve.server.status import streaming, unary
from embedserve.server.vectors import SCROLL_PAGE, QueryResult, VectorCore
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import vector_pb2 as pb
from embedserve.v1 import vector_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class VectorService(pb_grpc.VectorServiceServicer):
    def __init__(self, ingest: IngestSettings, layout: vc.CollectionLayout, drain: Drain) -> None:
        self._attached: VectorCore | None = None
        self.ingest = ingest
        self.layout = layout
        self._drain = drain

    def attach(self, core: VectorCore) -> None:
        self._attached = core

    @property
    def _core(self) -> VectorCore:
        if self._attached is None:
            raise NotReady("the server is still starting; wait for health SERVING")
        return self._attached

    def _pipeline(self) -> IngestPipeline:
        return IngestPipeline(self._core, self.ingest, self._drain)

    # -- collections -------------------------------------------------------------

    @unary
    async def CreateCollection(
        self, request: pb.CreateCollectionRequest, context: Context
    ) -> pb.CreateCollectionResponse:
        core = self._core
        spec = vc.spec_from_proto(
            request.name, request.config, core.model_width, core.model_distance, self.layout
        )
        info = await self._core.create_collection(spec)
        return pb.CreateCollectionResponse(collection=vc.info_to_proto(info))

    @unary
    async def ListCollections(
        self, request: pb.ListCollectionsRequest, context: Context
    ) -> pb.ListCollectionsResponse:
        names = await self._core.list_collections()
        return pb.ListCollectionsResponse(names=names)

    @unary
    async def GetCollection(
        self, request: pb.GetCollectionRequest, context: Context
    ) -> pb.GetCollectionResponse:
        info = await self._core.get_collection(request.name)
        return pb.GetCollectionResponse(collection=vc.info_to_proto(info))

    @unary
    async def UpdateCollection(
        self, request: pb.UpdateCollectionRequest, context: Context
    ) -> pb.UpdateCollectionResponse:
        info = await self._core.update_collection(request.name, vc.update_from_proto(request))
        return pb.UpdateCollectionResponse(collection=vc.info_to_proto(info))

    @unary
    async def DeleteCollection(
        self, request: pb.DeleteCollectionRequest, context: Context
    ) -> pb.DeleteCollectionResponse:
        await self._core.delete_collection(request.name)
        return pb.DeleteCollectionResponse()

    @unary
    async def UpdateAliases(
        self, request: pb.UpdateAliasesRequest, context: Context
    ) -> pb.UpdateAliasesResponse:
        await self._core.update_aliases(dict(request.set), list(request.delete))
        return pb.UpdateAliasesResponse()

    @unary
    async def ListAliases(
        self, request: pb.ListAliasesRequest, context: Context
    ) -> pb.ListAliasesResponse:
        aliases = await self._core.list_aliases(request.collection)
        return pb.ListAliasesResponse(
            aliases=[pb.Alias(alias=a, collection=c) for a, c in aliases.items()]
        )

    # -- writes ------------------------------------------------------------------

    @unary
    async def Upsert(self, request: pb.UpsertRequest, context: Context) -> pb.UpsertResponse:
        documents = vc.documents_from_proto(request.documents)
        prepared = await self._core.upsert(
            request.collection, documents, vc.write_settings(request.options)
        )
        return pb.UpsertResponse(
            upserted=len(prepared.points),
            usage=epb.Usage(total_tokens=prepared.tokens),
            timings=convert.timings_to_proto(prepared.timings),
        )

    @unary
    async def Ingest(
        self, request_iterator: AsyncIterator[pb.IngestRequest], context: Context
    ) -> pb.IngestResponse:
        pipeline = self._pipeline()
        messages = tokens = 0
        async for ack in pipeline.run(_ingest_messages(request_iterator)):
            messages += 1  # one acknowledgement per message
            tokens += ack.tokens
        return pb.IngestResponse(
            documents_written=pipeline.acknowledged,
            messages=messages,
            last_id=pipeline.last_id,
            usage=epb.Usage(total_tokens=tokens),
        )

    @streaming
    async def IngestStream(
        self, request_iterator: AsyncIterator[pb.IngestStreamRequest], context: Context
    ) -> AsyncIterator[pb.IngestStreamResponse]:
        async for ack in self._pipeline().run(_ingest_messages(request_iterator)):
            yield pb.IngestStreamResponse(
                batch_id=ack.batch_id, ids=ack.ids, total_acknowledged=ack.total_acknowledged
            )

    # -- queries -----------------------------------------------------------------

    @unary
    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        found = await self._core.search(request.collection, vc.search_in(request))
        return _search_response(found)

    @unary
    async def SearchBatch(
        self, request: pb.SearchBatchRequest, context: Context
    ) -> pb.SearchBatchResponse:
        searches = []
        for index, search in enumerate(request.searches):
            with named(f"searches[{index}]"):
                searches.append(vc.batch_search_in(request.collection, search))
        found = await self._core.search_batch(request.collection, searches)
        return pb.SearchBatchResponse(responses=[_search_response(f) for f in found])

    @unary
    async def Recommend(
        self, request: pb.RecommendRequest, context: Context
    ) -> pb.RecommendResponse:
        found = await self._core.recommend(
            request.collection,
            [vc.example_from_proto(e) for e in request.positive],
            [vc.example_from_proto(e) for e in request.negative],
            convert.enum_value(vc.STRATEGIES, request.strategy, "strategy"),
            vc.optional_filter(request),
            vc.search_params(request.params),
            vc.embed_params(request.embed, Task.QUERY, "embed"),
            vc.group_by(request.group_by) if request.HasField("group_by") else None,
            vc.weighings(request),
        )
        return pb.RecommendResponse(
            results=vc.scored_to_proto(found.results),
            usage=epb.Usage(total_tokens=found.tokens),
            search_ms=found.search_ms,
            groups=vc.groups_to_proto(found.groups or ()),
        )

    @unary
    async def Get(self, request: pb.GetRequest, context: Context) -> pb.GetResponse:
        records = await self._core.get(request.collection, list(request.ids), request.with_vectors)
        exact = request.exact_payloads
        return pb.GetResponse(documents=[vc.record_to_proto(r, exact) for r in records])

    @unary
    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        await self._core.delete(request.collection, list(request.ids), vc.optional_filter(request))
        return pb.DeleteResponse()

    @unary
    async def Facet(self, request: pb.FacetRequest, context: Context) -> pb.FacetResponse:
        hits = await self._core.facet(
            request.collection,
            request.key,
            vc.optional_filter(request),
            vc.facet_limit(request),
        )
        return pb.FacetResponse(values=[vc.facet_value_to_proto(h) for h in hits])

    @unary
    async def UpdatePayload(
        self, request: pb.UpdatePayloadRequest, context: Context
    ) -> pb.UpdatePayloadResponse:
        await self._core.update_payload(
            request.collection,
            list(request.ids),
            vc.optional_filter(request),
            vc.payload_from_proto(request.payload),
            list(request.delete_keys),
        )
        return pb.UpdatePayloadResponse()

    @unary
    async def Count(self, request: pb.CountRequest, context: Context) -> pb.CountResponse:
        count = await self._core.count(request.collection, vc.optional_filter(request))
        return pb.CountResponse(count=count)

    # -- export and analysis -----------------------------------------------------

    @unary
    async def Scroll(self, request: pb.ScrollRequest, context: Context) -> pb.ScrollResponse:
        page = await self._core.scroll(
            request.collection,
            vc.optional_filter(request),
            request.limit if request.HasField("limit") else SCROLL_PAGE,
            request.cursor or None,
            request.with_payload if request.HasField("with_payload") else True,
            request.with_vectors,
            vc.scroll_order(request),
        )
        return pb.ScrollResponse(
            documents=[vc.record_to_proto(r, request.exact_payloads) for r in page.records],
            next_cursor=page.next_cursor or "",
        )

    @unary
    async def Cluster(self, request: pb.ClusterRequest, context: Context) -> pb.ClusterResponse:
        report = await AnalysisCore(self._core).cluster(ac.cluster_job(request))
        return ac.cluster_response(report)

    @unary
    async def FindDuplicates(
        self, request: pb.FindDuplicatesRequest, context: Context
    ) -> pb.FindDuplicatesResponse:
        report = await AnalysisCore(self._core).find_duplicates(
            request.collection,
            vc.optional_filter(request),
            ac.duplicate_settings(request),
            request.with_text if request.HasField("with_text") else True,
            list(request.texts.texts) if request.HasField("texts") else None,
        )
        return ac.duplicates_response(report)


async def _ingest_messages(
    requests: AsyncIterator[pb.IngestRequest] | AsyncIterator[pb.IngestStreamRequest],
) -> AsyncIterator[IngestMessage]:
    """Ingest and IngestStream messages for the pipeline; errors name a message without a
    batch_id (all of Ingest's) by its number, from 1."""
    number = 0
    async for request in requests:
        number += 1
        batch_id = request.batch_id if isinstance(request, pb.IngestStreamRequest) else ""
        with named(message_name(batch_id, number)):
            documents = vc.documents_from_proto(request.documents)
            settings = vc.write_settings(request.options)
        yield IngestMessage(batch_id, request.collection, documents, settings, number)


def _search_response(found: QueryResult) -> pb.SearchResponse:
    return pb.SearchResponse(
        results=vc.scored_to_proto(found.results),
        usage=epb.Usage(total_tokens=found.tokens),
        timings=convert.timings_to_proto(found.timings),
        search_ms=found.search_ms,
        groups=vc.groups_to_proto(found.groups or ()),
    )
