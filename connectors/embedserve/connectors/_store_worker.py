"""Entry point of the store's child process (see ``process.py``)."""

import json
import sys
from multiprocessing.connection import Connection

from .process import serve

serve(Connection(int(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3]))
