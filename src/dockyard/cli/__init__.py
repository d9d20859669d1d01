"""The command-line interface (layer L6): click commands, rendering, exit codes."""
