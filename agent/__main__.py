"""``python -m agent``: serve the timing agent (see ``python -m agent --help``)."""

import sys

from agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
