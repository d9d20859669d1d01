"""dockyard: a daemonless, Docker-compatible container image builder and manager."""

__version__ = "0.1.0"
