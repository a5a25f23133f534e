"""The HTTP/1.1 JSON transport: an OpenAI-compatible API and a REST mirror of the gRPC API.

Like the gRPC servicers, it only translates: JSON to core calls, core errors to statuses
from the one status table.
"""
