"""``python -m mcp_server``: the same as ``dwf mcp``."""

import sys

from mcp_server.cli import main

if __name__ == "__main__":
    sys.exit(main())
