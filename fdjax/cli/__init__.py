"""(5) The ``fdjax`` command. Importing it loads neither JAX nor the report machinery:
``fdjax --help`` and ``fdjax calc`` stay fast."""

from .command import build_parser as build_parser
from .command import main as main
