"""Python client for embedserve.

>>> from embedserve.client import EmbedClient
>>> with EmbedClient("127.0.0.1:50051") as client:
...     vectors = client.embed(["first text", "second text"], task="document")
"""

from embedserve.client._async import AsyncEmbedClient
from embedserve.client._calls import Ranked
from embedserve.client._documents import FacetCount, Hit, HitGroup, StoredDocument
from embedserve.client._sync import EmbedClient

__all__ = [
    "AsyncEmbedClient",
    "EmbedClient",
    "FacetCount",
    "Hit",
    "HitGroup",
    "Ranked",
    "StoredDocument",
]
