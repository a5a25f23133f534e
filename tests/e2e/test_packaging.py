"""What a built wheel puts into site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_holds_only_the_embedserve_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("embedserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"embedserve", wheel.name.split("-py")[0] + ".dist-info"}
    assert "embedserve/__init__.py" not in names  # a PEP 420 namespace shared by three roots
    for expected in (
        "embedserve/server/cli.py",
        "embedserve/server/__init__.py",
        "embedserve/connectors/store.py",
        "embedserve/client/__init__.py",
        "embedserve/client/py.typed",
        "embedserve/v1/embedding_pb2.py",
        "embedserve/v1/embedding_pb2.pyi",
    ):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "embedserve = embedserve.server.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
