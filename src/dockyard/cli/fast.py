"""``dockyard images`` answered without click (its import is most of a listing's start-up).

Only the plain forms are answered here: ``[--root DIR] images [-a] [-q] [--digests] [--no-trunc]``
as root; anything else (another flag, ``-D``, a filter, a template, rootless) returns None and
click parses the command line as always. The rows, the table and the errors are the click
command's own (``cli.listing``, and the same one-line ``Error:`` and exit codes as ``cli.group``).
"""

from __future__ import annotations

import os
import sys

_IMAGES_FLAGS = {"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet",
                 "--digests": "digests", "--no-trunc": "no_trunc"}


def answer(args: list[str]) -> int | None:
    """Run ``args`` if it is a plain ``images``; its exit code, or None to leave it to click."""
    if os.environ.get("DOCKYARD_DEBUG", "") not in ("", "0") or os.geteuid() != 0:
        return None
    root = os.environ.get("DOCKYARD_ROOT") or None
    i = 0
    while i < len(args) and args[i].startswith("--root"):
        if args[i] == "--root" and i + 1 < len(args):
            root, i = args[i + 1], i + 2
        elif args[i].startswith("--root="):
            root, i = args[i][len("--root="):], i + 1
        else:
            return None
    if args[i:i + 1] != ["images"]:
        return None
    flags = set()
    for arg in args[i + 1:]:
        if arg not in _IMAGES_FLAGS:
            return None
        flags.add(_IMAGES_FLAGS[arg])
    return _run(root, flags)


def _run(root: str | None, flags: set[str]) -> int:
    from dockyard.errors import DockyardError

    try:
        _images(root, flags)
    except DockyardError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (``dockyard images | head``): not an error
        return 0
    except Exception as exc:
        sys.stderr.write(f"Error: internal error: {type(exc).__name__}: {exc} "
                         "(set DOCKYARD_DEBUG=1 for details)\n")
        return 1
    return 0


def _images(root: str | None, flags: set[str]) -> None:
    """What ``images_cmd`` does for these flags (no filter, no template)."""
    from dockyard.cli.format import IMAGE_HEADERS
    from dockyard.cli.listing import IMAGE_COLUMNS, image_rows, write_formatted
    from dockyard.config import root_dir
    from dockyard.imageops.list_cache import list_images

    # What ``Client(root).images()`` does, without loading the client module (a large one), and
    # from the store's copy of the listing when it is current (no sqlite3).
    images = list_images(str(root_dir(root)), all="all" in flags)
    if "quiet" in flags:
        fmt = "{{.ID}}"
    else:
        cols = list(IMAGE_COLUMNS)
        if "digests" in flags:
            cols.insert(2, "Digest")
        fmt = "table " + "\t".join("{{." + c + "}}" for c in cols)
    rows = image_rows(images, digests="digests" in flags, no_trunc="no_trunc" in flags, fields=fmt)
    write_formatted(rows, fmt, IMAGE_HEADERS)
