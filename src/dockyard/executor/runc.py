"""Placeholder; replaced below."""
class RuncExecutor:  # noqa
    pass
