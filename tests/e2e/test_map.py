"""``embedserve map`` on the labelled topics corpus with the packaged MiniLM, against a
live server: the files it writes, how well the map keeps topics apart, the HTML page in
headless Chromium, and its errors for bad input."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chromium_page import CHROMIUM, render
from test_cli import CLI, cli_env, cli_server

from embedserve.client import EmbedClient

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "docs" / "data" / "topics_corpus.jsonl"
DOCUMENTS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with cli_server(tmp_path_factory.mktemp("data")) as target:
        with EmbedClient(target) as client:
            client.create_collection("topics_map")
            client.ingest("topics_map", DOCUMENTS, store_text=True)
            client.create_collection("empty_map", dimensions=384)
        yield target


def map_cli(target: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "map", *args, "--target", target],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=600,
    )


def read_coords(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as file:
        return list(csv.DictReader(file))


def separation(rows: list[dict[str, str]], group_of: dict[str, str]) -> float:
    """Mean distance between points of different groups over that within a group."""
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    groups = np.array([group_of[r["id"]] for r in rows])
    distances = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    same = groups[:, None] == groups[None, :]
    other_points = ~np.eye(len(rows), dtype=bool)
    return float(distances[~same].mean() / distances[same & other_points].mean())


def test_umap_map_of_a_collection_keeps_topics_apart(served: str, tmp_path: Path) -> None:
    done = map_cli(
        served,
        *("topics_map", "--method", "umap", "--color-by", "topic"),
        *("-o", "map.png", "--html", "map.html", "--coords", "coords.csv"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "UMAP of 336 points" in done.stderr  # progress went to stderr
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG_MAGIC

    rows = read_coords(tmp_path / "coords.csv")
    topic = {d["id"]: d["payload"]["topic"] for d in DOCUMENTS}
    assert sorted(r["id"] for r in rows) == sorted(topic)
    assert all(r["group"] == topic[r["id"]] for r in rows)
    ratio = separation(rows, topic)
    print(f"different-topic / same-topic mean distance on the UMAP map: {ratio:.2f}")
    assert ratio >= 1.5

    page = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert "<script src=" not in page  # plotly inlined: the page opens offline
    check_page_in_chromium(tmp_path / "map.html", drawn=len(DOCUMENTS))


def check_page_in_chromium(page: Path, drawn: int) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (scripts/ensure_chromium.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    rendered = render(page)
    assert rendered.errors == []
    assert rendered.points == drawn
    # The hovered point's id leads its label, then its text and payload.
    doc = next(d for d in DOCUMENTS if rendered.hover.startswith(d["id"]))
    assert doc["text"][:40] in rendered.hover
    assert '"topic": "' + doc["payload"]["topic"] + '"' in rendered.hover


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_map_of_a_file_coloured_by_cluster_matches_cluster(
    served: str, tmp_path: Path, method: str
) -> None:
    some = DOCUMENTS[:20] + DOCUMENTS[60:80] + DOCUMENTS[120:140]
    texts = tmp_path / "some.jsonl"
    texts.write_text("".join(json.dumps(d) + "\n" for d in some), encoding="utf-8")
    done = map_cli(
        served,
        *(str(texts), "--method", method, "--color-by", "cluster", "--k", "3"),
        *("--coords", "coords.csv", "-o", "map.png"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = read_coords(tmp_path / "coords.csv")
    assert [r["id"] for r in rows] == [d["id"] for d in some]

    with EmbedClient(served) as client:
        expected = client.cluster(texts=[d["text"] for d in some], k=3)
    by_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        by_group[row["group"]].add(row["id"])
    by_label: dict[int, set[str]] = defaultdict(set)
    for position, label in zip(expected.ids, expected.labels, strict=True):
        by_label[label].add(some[int(position)]["id"])
    assert sorted(map(sorted, by_group.values())) == sorted(map(sorted, by_label.values()))
    assert all(name.startswith("cluster ") for name in by_group)
    topic = {d["id"]: d["payload"]["topic"] for d in some}
    ratio = separation(rows, topic)
    print(f"different-topic / same-topic mean distance on the {method} map: {ratio:.2f}")
    assert ratio >= 1.5


def test_a_sample_above_max_points_is_seeded_and_is_the_clustered_sample(
    served: str, tmp_path: Path
) -> None:
    def sample(seed: str, name: str) -> list[dict[str, str]]:
        done = map_cli(
            served,
            *("topics_map", "--method", "pca", "--max-points", "100", "--seed", seed),
            *("--color-by", "cluster", "--k", "6", "--coords", f"{name}.csv"),
            *("--html", f"{name}.html"),
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return read_coords(tmp_path / f"{name}.csv")

    first, again, other = sample("3", "first"), sample("3", "again"), sample("4", "other")
    assert len(first) == 100
    assert first == again
    assert {r["id"] for r in other} != {r["id"] for r in first}
    with EmbedClient(served) as client:
        clustered = client.cluster("topics_map", k=6, max_points=100, seed=3)
    # The map shows exactly the points the Cluster RPC sampled and labelled.
    assert {r["id"] for r in first} == set(clustered.ids)
    assert "a sample of 100 of 336 points" in (tmp_path / "first.html").read_text()


NOTHING = '{"must": [{"match": {"key": "topic", "text": "no such topic"}}]}'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["empty_map", "--method", "pca", "-o", "m.png"], "'empty_map' has no points"),
        # Coloured by cluster, too few points are named before the server clusters them.
        (["empty_map", "--color-by", "cluster", "-o", "m.png"], "'empty_map' has no points"),
        (
            ["topics_map", "--color-by", "cluster", "-o", "m.png", "--filter", NOTHING],
            "has no points matching the filter",
        ),
        (["two.jsonl", "--color-by", "cluster", "-o", "m.png"], "at least 3 points; there are 2"),
        (
            ["topics_map", "--method", "pca", "--color-by", "colour", "-o", "m.png"],
            "--color-by colour: no point has a payload field 'colour' "
            "(fields: duplicate_of, topic)",
        ),
        (["topics_map", "--color-by", "cluster", "--k", "1", "-o", "m.png"], "--k 1"),
        (["topics_map", "--k", "4", "-o", "m.png"], "only with --color-by cluster"),
        (["topics_map", "--seed", "-1", "-o", "m.png"], "--seed: must be from 0 to 2**32 - 1"),
        (
            ["topics_map", "--color-by", "cluster", "--min-cluster-size", "3", "-o", "m.png"],
            "--min-cluster-size applies to --algorithm hdbscan",
        ),
        (["topics_map", "--method", "umap", "--perplexity", "5", "-o", "m.png"], "tsne only"),
        (
            ["topics_map", "--method", "tsne", "--perplexity", "nan", "-o", "m.png"],
            "--perplexity nan: must be a positive number",
        ),
        (["topics_map", "--method", "pca", "-o", "", "--coords", "c.csv"], "a file name expected"),
        (
            ["topics_map", "--method", "umap", "--neighbors", "400", "-o", "m.png"],
            "--neighbors 400: must be below the 336 points",
        ),
        (["missing.jsonl", "--method", "pca", "-o", "m.png"], "missing.jsonl: no such file"),
        (["topics_map", "--method", "pca"], "nothing to write"),
        (["topics_map", "--method", "pca", "-o", "map.jpg"], "must end in .png"),
        (
            ["bad.jsonl", "--method", "pca", "-o", "m.png"],
            "bad.jsonl line 2 has no non-empty string 'text'",
        ),
    ],
)
def test_bad_input_is_named(served: str, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": "typo"}\n', encoding="utf-8")
    (tmp_path / "two.jsonl").write_text("a cat\na dog\n", encoding="utf-8")
    done = map_cli(served, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "m.png").exists()


def test_hdbscan_colours_of_a_few_texts_take_a_smaller_cluster_size(
    served: str, tmp_path: Path
) -> None:
    """Four texts are fewer than HDBSCAN's default smallest cluster (5), and map had no
    flag to lower it."""
    (tmp_path / "four.txt").write_text("a cat\na kitten\nstocks fell\nshares fell\n")
    done = map_cli(
        served,
        *("four.txt", "--method", "pca", "--color-by", "cluster", "--algorithm", "hdbscan"),
        *("--min-cluster-size", "2", "--coords", "h.csv"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_coords(tmp_path / "h.csv")) == 4


def test_a_map_reads_texts_from_standard_input_and_writes_coords_to_standard_output(
    served: str, tmp_path: Path
) -> None:
    """'-' was taken as a collection's name, and --coords - wrote a file named '-'."""
    some = DOCUMENTS[:12]
    done = subprocess.run(
        [*CLI, "map", "-", "--method", "pca", "--coords", "-", "-o", "map.png", "--target", served],
        input="".join(json.dumps(d) + "\n" for d in some),
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [r["id"] for r in rows] == [d["id"] for d in some]
    assert not (tmp_path / "-").exists()
    assert "wrote standard output" in done.stderr


def test_a_map_that_fails_part_way_leaves_the_earlier_files_together(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image was moved into place before the page was drawn: a page that failed (a full
    disk, Ctrl-C) left a new image beside the earlier page and coordinates."""
    from embedserve.client.cli import main as cli_main
    from embedserve.client.maps import html

    outputs = [f"{flag}={tmp_path / name}" for flag, name in OUTPUTS]
    command = ["map", "topics_map", "--method", "pca", "--max-points", "60", *outputs]
    assert cli_main([*command, "--target", served]) == 0
    earlier = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert sorted(earlier) == sorted(name for _, name in OUTPUTS)

    def disk_full(*args: object) -> None:  # a fault the test cannot make for real
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(html, "write_html", disk_full)
    assert cli_main([*command, "--title", "another map", "--target", served]) == 2
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == earlier


OUTPUTS = [("-o", "map.png"), ("--html", "map.html"), ("--coords", "map.csv")]


def test_a_map_of_texts_from_a_pipe_named_by_its_path(served: str, tmp_path: Path) -> None:
    """``map <(command)``: a pipe is no regular file, and was refused as "no such file"."""
    some = DOCUMENTS[:12]
    pipe = tmp_path / "texts.jsonl"
    os.mkfifo(pipe)
    writer = subprocess.Popen(["sh", "-c", f'cat > "{pipe}"'], stdin=subprocess.PIPE, text=True)
    try:
        assert writer.stdin is not None
        writer.stdin.write("".join(json.dumps(d) + "\n" for d in some))
        writer.stdin.close()
        done = map_cli(served, str(pipe), "--method", "pca", "--coords", "c.csv", cwd=tmp_path)
    finally:
        writer.kill()  # waits for a reader, where the map read nothing
        writer.wait()
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in read_coords(tmp_path / "c.csv")] == [d["id"] for d in some]
