"""Project policies checked while a push or delete is in progress: immutable tags and storage quotas.

Both refuse with the distribution spec's ``DENIED`` (403) and a message saying which rule and why.
"""

from __future__ import annotations

import fnmatch

from ..apierrors import ApiError
from .accounts import Project


def immutable_pattern(project: Project, tag: str) -> str | None:
    """The first immutable-tag pattern of the project that ``tag`` matches."""
    return next((glob for glob in project.immutable if fnmatch.fnmatchcase(tag, glob)), None)


def check_overwrite(project: Project, repo: str, tag: str, current: str | None, digest: str) -> None:
    """Refuse to move an immutable tag to another manifest (pushing the same manifest again is fine)."""
    glob = immutable_pattern(project, tag)
    if glob is not None and current is not None and current != digest:
        raise ApiError(403, "DENIED", f"tag {tag} of {repo} is immutable (project {project.name} rule "
                       f"{glob!r}) and already points to {current}: push under a new tag",
                       detail={"tag": tag, "rule": glob})


def check_delete(project: Project, repo: str, tags: list[str]) -> None:
    """Refuse to delete an immutable tag, or a manifest an immutable tag points to."""
    for tag in tags:
        glob = immutable_pattern(project, tag)
        if glob is not None:
            raise ApiError(403, "DENIED", f"tag {tag} of {repo} is immutable (project {project.name} rule "
                           f"{glob!r}) and may not be deleted", detail={"tag": tag, "rule": glob})


def quota_error(project: Project, used: int, adding: int | None) -> ApiError | None:
    """The refusal when ``adding`` more bytes would take the project past its quota (None: room)."""
    if project.quota is None:
        return None
    more = adding or 0
    if used + more <= project.quota and used < project.quota:
        return None
    what = f"{more} more bytes would exceed it" if more else "it is full"
    return ApiError(403, "DENIED", f"quota exceeded: project {project.name} uses {used} of its "
                    f"{project.quota} bytes; {what}", detail={"project": project.name, "used": used,
                                                               "quota": project.quota, "adding": more})
