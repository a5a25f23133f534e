"""mutmut's command line, with mutant names that match how the tests import the code.

mutmut names a mutant after its file's path (``server/embedserve/server/batcher.py`` gives
``server.embedserve.server.batcher``; only a ``src/`` prefix is dropped), while the
trampolines in the mutated code record the module's import name
(``embedserve.server.batcher``, since ``server/`` is an import root). The names never match,
so every run stopped after the stats pass. Dropping the import root from the path first
makes both the same. Written against mutmut 3.8.1, the version scripts/mutation.sh pins.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mutmut import __main__ as mutmut_main
from mutmut.mutation import file_mutation
from mutmut.utils import format_utils

IMPORT_ROOT = Path("server")
_path_named = format_utils.get_mutant_name


def mutant_name(relative_source_path: Path, mutant_method_name: str) -> str:
    path = Path(relative_source_path)
    if path.is_relative_to(IMPORT_ROOT):
        path = path.relative_to(IMPORT_ROOT)
    return _path_named(path, mutant_method_name)


if __name__ == "__main__":
    # Every module that imported the function by name gets the replacement.
    for module in (format_utils, mutmut_main, file_mutation):
        module.get_mutant_name = mutant_name  # type: ignore[attr-defined]
    sys.argv[0] = "mutmut"
    mutmut_main.cli()
