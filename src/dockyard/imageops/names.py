"""Stored image names as docker shows them: pure string work, importable without the store."""

from __future__ import annotations

__all__ = ["familiar", "split_stored"]


def split_stored(name: str) -> tuple[str, str, str]:
    """A stored (fully normalised) name -> (familiar repository, tag, digest); "" for absent parts.

    Pure string work: stored names were validated when written, and ``images`` lists thousands.
    """
    repo, _, digest = name.partition("@")
    tag = ""
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > slash:
        repo, tag = repo[:colon], repo[colon + 1:]
    if repo.startswith("docker.io/"):
        repo = repo[len("docker.io/"):]
        if repo.startswith("library/") and "/" not in repo[len("library/"):]:
            repo = repo[len("library/"):]
    return repo, tag, digest


def familiar(name: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (as docker shows names)."""
    repo, tag, digest = split_stored(name)
    return repo + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
