"""The server's worker threads carry OS-level names, inherited by the threads they start."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from embedserve.client import EmbedClient
from embedserve.server.app import MODEL_THREAD, STORE_THREAD, TOKENIZE_THREAD
from embedserve.server.thread_names import namer

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")


def os_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def os_names() -> list[str]:
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # ended meanwhile
            continue
    return names


def test_pool_threads_and_the_threads_they_start_carry_the_name() -> None:
    def on_pool_thread() -> tuple[str, str]:
        seen: list[str] = []
        child = threading.Thread(target=lambda: seen.append(os_name()))
        child.start()
        child.join()
        return os_name(), seen[0]

    # The kernel keeps 15 bytes: longer names are cut, not refused.
    with ThreadPoolExecutor(1, initializer=namer("es-a-rather-long-name")) as pool:
        assert pool.submit(on_pool_thread).result() == ("es-a-rather-lon", "es-a-rather-lon")
    assert os_name() != "es-a-rather-lon"  # the caller's own name is untouched


def test_a_serving_server_names_its_worker_threads(minilm_server: Any) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.embed(["one", "two"])
        client.create_collection("threads")  # runs on the store pool
    names = os_names()
    assert {MODEL_THREAD, TOKENIZE_THREAD, STORE_THREAD} <= set(names)
