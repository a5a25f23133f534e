"""REST mirror of VectorService's aliases: list them, and change them in one request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from embedserve.server.auth import ApiKey, check_alias_change, check_collection, visible_aliases
from embedserve.server.http.backend import backend_of
from embedserve.server.http.guard import guard
from embedserve.server.http.response_schemas import Empty, ListAliasesResponse, ok
from embedserve.server.http.responses import json_response
from embedserve.server.http.schemas import UpdateAliasesRequest
from embedserve.server.http.strict_json import StrictJsonRoute

router = APIRouter(prefix="/api/v1/aliases", tags=["Vector store"], route_class=StrictJsonRoute)
Caller = Annotated[ApiKey | None, Depends(guard)]


@router.get(
    "",
    summary="List aliases, sorted (only one collection's with ?collection=)",
    responses=ok(ListAliasesResponse),
)
async def list_aliases(request: Request, caller: Caller, collection: str = Query("")) -> Response:
    if caller is not None:
        check_collection(caller, collection)  # as gRPC checks the request's collection
    aliases = await backend_of(request).vectors.list_aliases(collection)
    if caller is not None:
        aliases = visible_aliases(caller, aliases)
    return json_response({"aliases": [{"alias": a, "collection": c} for a, c in aliases.items()]})


@router.post("", summary="Set and delete aliases, all or none (admin)", responses=ok(Empty))
async def update_aliases(body: UpdateAliasesRequest, request: Request, caller: Caller) -> Response:
    if caller is not None:
        check_alias_change(caller, body.set, body.delete)
    await backend_of(request).vectors.update_aliases(body.set, body.delete)
    return json_response({})
