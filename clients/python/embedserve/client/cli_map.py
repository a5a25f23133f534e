"""``embedserve map``: a 2-D picture (PNG and/or interactive HTML) of a collection or of a
file of texts, projected with UMAP, t-SNE or PCA in this process (see embedserve.client.maps)."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import IO, Any

from embedserve.client._sync import EmbedClient
from embedserve.client.cli_connect import (
    add_target,
    client_verb,
    filter_arg,
    int_from,
    non_negative_int,
    output_path,
    positive_int,
)
from embedserve.client.cli_output import (
    output_name,
    replaced_together,
    replaced_when_done,
    text_output,
)
from embedserve.client.maps.build import CLUSTER, Map, MapRequest, build_map
from embedserve.client.maps.extra import MissingExtra, require
from embedserve.client.maps.projection import METHODS, MIN_POINTS, Projection


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "map",
        help="draw a 2-D map (UMAP, t-SNE or PCA) of a collection or a file of texts",
    )
    parser.add_argument(
        "source",
        metavar="COLLECTION|FILE",
        help='a collection, or a file of texts (one a line, or JSONL with "text" and '
        'optionally "id" and "payload")',
    )
    add_target(parser)
    parser.set_defaults(run=_run)
    parser.add_argument("--method", default="umap", choices=METHODS)
    parser.add_argument(
        "--color-by",
        metavar="FIELD|cluster",
        help="colour by a payload field, or by the labels of `embedserve cluster`",
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE.png", type=output_path, help="write the map as a PNG"
    )
    parser.add_argument(
        "--html", metavar="FILE.html", type=output_path, help="write an interactive HTML page"
    )
    parser.add_argument(
        "--coords",
        metavar="FILE.csv",
        type=output_path,
        help="write id, x, y and colour group of each point ('-': standard output)",
    )
    parser.add_argument("--title", help="default: what was mapped, and how")
    parser.add_argument(
        "--max-points",
        type=int_from(MIN_POINTS),
        help="map a seeded random sample above this many points (default: umap 50,000, "
        "tsne 10,000, pca 500,000)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="sampling and projection seed"
    )
    parser.add_argument(
        "--pca-dims", type=int, default=50, help="PCA to this many dimensions before umap/tsne"
    )
    parser.add_argument("--neighbors", type=int, help="umap's n_neighbors (default 15)")
    parser.add_argument("--perplexity", type=float, help="tsne's perplexity (default 30)")
    parser.add_argument("--filter", help="JSON filter, as for search (collections)")
    parser.add_argument(
        "--algorithm", choices=["kmeans", "hdbscan"], help="with --color-by cluster"
    )
    parser.add_argument(
        "--k", type=positive_int, help="clusters, with --color-by cluster (default: chosen)"
    )
    parser.add_argument(
        "--min-cluster-size",
        type=positive_int,
        help="hdbscan's smallest cluster, with --color-by cluster (default 5)",
    )


def _run(args: argparse.Namespace) -> int:
    """Checks what needs no server first: flags, then the optional libraries."""
    try:
        request = _request(args)
        require(*_modules(args))
    except (ValueError, MissingExtra) as exc:
        print(f"embedserve: {exc}", file=sys.stderr)
        return 2
    return client_verb(lambda client, _: _draw(client, args, request))(args)


def _request(args: argparse.Namespace) -> MapRequest:
    if not (args.output or args.html or args.coords):
        raise ValueError("nothing to write: give -o FILE.png, --html FILE.html or --coords")
    for flag, path, ending in (("-o", args.output, ".png"), ("--html", args.html, ".html")):
        if path and not path.lower().endswith(ending):
            raise ValueError(f"{flag} {path}: the file name must end in {ending}")
    cluster: dict[str, Any] = {}
    if args.algorithm is not None:
        cluster["algorithm"] = args.algorithm
    if args.k is not None:
        if args.k < 2:
            raise ValueError(f"--k {args.k}: a map of clusters needs at least 2")
        if args.algorithm == "hdbscan":
            raise ValueError("--k applies to kmeans; hdbscan finds the number of clusters")
        cluster["k"] = args.k
    if args.min_cluster_size is not None:
        if args.algorithm != "hdbscan":
            raise ValueError("--min-cluster-size applies to --algorithm hdbscan")
        cluster["min_cluster_size"] = args.min_cluster_size
    if cluster and args.color_by != CLUSTER:
        raise ValueError(
            "--k, --algorithm and --min-cluster-size apply only with --color-by cluster"
        )
    projection = Projection(
        method=args.method,
        seed=args.seed,
        pca_dims=args.pca_dims,
        neighbors=args.neighbors,
        perplexity=args.perplexity,
    )
    projection.check()
    return MapRequest(
        source=args.source,
        projection=projection,
        color_by=args.color_by,
        max_points=args.max_points,
        filter=filter_arg(args.filter),
        cluster=cluster,
    )


def _modules(args: argparse.Namespace) -> list[str]:
    modules = ["sklearn"]
    if args.method == "umap":
        modules.append("umap")
    if args.output:
        modules.append("matplotlib")
    if args.html:
        modules.append("plotly")
    return modules


def _draw(client: EmbedClient, args: argparse.Namespace, request: MapRequest) -> int:
    from embedserve.client.maps.labels import groups
    from embedserve.client.maps.progress import stderr_progress

    progress = stderr_progress()
    result = build_map(client, request, progress)
    title = args.title or result.title
    drawn = groups(result.labels)
    # Moved into place together: a run cut short leaves no new image beside an old page.
    with replaced_together() as files:
        if args.output:
            from embedserve.client.maps.png import write_png

            image = files.enter_context(replaced_when_done(args.output, binary=True))
            write_png(result.coords, drawn, title, image)
        if args.html:
            from embedserve.client.maps.html import write_html

            page = files.enter_context(replaced_when_done(args.html))
            write_html(result.coords, result.points, drawn, title, page)
        if args.coords:
            _write_coords(result, files.enter_context(text_output(args.coords, newline="")))
    for path in (args.output, args.html, args.coords):
        if path:
            progress(f"wrote {output_name(path)}")
    return 0


def _write_coords(result: Map, file: IO[str]) -> None:
    writer = csv.writer(file)
    writer.writerow(["id", "x", "y", "group"])
    for i, (x, y) in enumerate(result.coords.tolist()):
        writer.writerow([result.points.ids[i], f"{x:.5f}", f"{y:.5f}", result.labels[i]])
