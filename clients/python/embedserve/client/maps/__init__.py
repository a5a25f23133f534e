"""2-D maps of embeddings (``embedserve map``): read points, project them, draw them.

The projection and the drawing run here, in the client, not in the server: they need
heavy optional libraries (umap-learn, matplotlib, plotly: the ``maps`` extra), they take
minutes of CPU for large maps that would otherwise compete with the server's embedding
work, and their output is files for the person who asked.

``points`` reads a collection (Scroll) or a file of texts (Embed); ``labels`` gives each
point its colour group (a payload field, or the Cluster RPC's labels); ``projection``
turns vectors into 2-D coordinates; ``png`` and ``html`` draw them; ``build`` ties the
steps together for the command line and for notebooks and benchmarks.
"""

from embedserve.client.maps.build import Map, MapRequest, build_map
from embedserve.client.maps.projection import Projection

__all__ = ["Map", "MapRequest", "Projection", "build_map"]
