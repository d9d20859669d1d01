"""``python -m dockyard``."""

from dockyard.cli.main import main

main()
