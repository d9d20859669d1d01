"""Which Dockerfile line made each layer: the image history aligned with the target stage's instructions.

BuildKit and dockyard's builder write one history entry per instruction of the built stage except
FROM and ONBUILD (config-only ones as ``empty_layer``), after the entries of the base image; a stage
built ``FROM`` an earlier stage continues that stage's entries. So the history, read from its end, pairs
with the target stage's instructions read from their end (and then with its base stage's): each pair
must name the same instruction, else the Dockerfile is not the one the image was built from and the
alignment stops there. Identical instructions in two places and multi-stage builds map exactly, which
matching texts cannot do.

    lines = history_lines(config.history, dockerfile_text)   # HistoryLines(layers=[None, 3, 5], note="")
    lines = dockerfile_lines(config.history, commands, text) # the same, texts matched where it stopped
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.dockerfile import parse
from dockyard.dockerfile.instructions import (
    AddInstruction,
    CopyInstruction,
    FromInstruction,
    Instruction,
    OnbuildInstruction,
    RunInstruction,
)
from dockyard.dockerfile.stages import parse_stages
from dockyard.errors import InvalidArgument
from dockyard.oci.config import History
from dockyard.record import record
from dockyard.tools.analyze.waste import layer_lines, plain_command

KEYWORDS = frozenset({"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL",
                      "MAINTAINER", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"})


@record(frozen=True, slots=True)
class HistoryLines:
    """The Dockerfile line of each layer (``None``: base image or unmatched) and of each history entry;
    ``note`` says where the history stopped matching the Dockerfile ('' when all of it matched)."""

    layers: list[int | None]
    entries: list[int | None]
    note: str = ""


def keyword(created_by: str) -> str:
    """The instruction a history entry records: ``RUN /bin/sh -c x # buildkit`` -> ``RUN``; the classic
    builder's ``/bin/sh -c #(nop) COPY ...`` -> ``COPY``, its ``/bin/sh -c make`` -> ``RUN``."""
    text = plain_command(created_by)
    word = text.split(" ", 1)[0].upper() if text else ""
    return word if word in KEYWORDS else "RUN"


def _agrees(instr: Instruction, created_by: str) -> bool:
    """False when a BuildKit-style entry (``... # buildkit``) of a RUN, COPY or ADD shows other words than
    the instruction (checked only where no variable or heredoc can have changed them)."""
    text = created_by.strip()
    if not text.endswith("# buildkit"):
        return True
    words = text.removesuffix("# buildkit").split()
    if isinstance(instr, CopyInstruction | AddInstruction):
        wanted = [*instr.sources, *(c.path for c in instr.contents), instr.dest]
        return any("$" in w for w in wanted) or words[1:] == wanted
    if isinstance(instr, RunInstruction) and not instr.files:
        command = " ".join(" ".join(instr.cmd_line).split())
        return " ".join(words).endswith(command)
    return True


def _chain(dockerfile: str, target: str | None, filename: str) -> list[Instruction]:
    """The instructions that write history, base stages first, ending with the target stage's."""
    plan = parse_stages(parse(dockerfile, filename))
    if not plan.stages:
        return []
    stage = plan.stages[-1]
    if target:
        named = [s for s in plan.stages if s.name.lower() == target.lower()]
        if not named:
            raise InvalidArgument(f"target stage {target!r} could not be found in the Dockerfile")
        stage = named[0]
    out: list[Instruction] = []
    while True:
        own = [i for i in stage.instructions if not isinstance(i, FromInstruction | OnbuildInstruction)]
        out[:0] = own
        if stage.base_stage is None:
            return out
        stage = plan.stages[stage.base_stage]


def history_lines(history: Sequence[History], dockerfile: str, target: str | None = None,
                  layer_count: int | None = None, filename: str = "Dockerfile") -> HistoryLines:
    """Align ``history`` (oldest first) with the Dockerfile's ``target`` stage (default: the last);
    ``filename`` names the Dockerfile in parse errors."""
    chain = _chain(dockerfile, target, filename)
    entries: list[int | None] = [None] * len(history)
    note = ""
    i = len(chain) - 1
    for j in range(len(history) - 1, -1, -1):
        if i < 0:
            break
        instr = chain[i]
        word = keyword(history[j].created_by)
        if word != type(instr).__name__.removesuffix("Instruction").upper() or \
                not _agrees(instr, history[j].created_by):
            note = (f"history entry {j + 1} ({plain_command(history[j].created_by)[:60]}) does not match "
                    f"line {instr.start_line} ({' '.join(instr.original.split())[:60]}): was the image built "
                    "from this Dockerfile?")
            break
        entries[j] = instr.start_line
        i -= 1
    layers = [line for h, line in zip(history, entries, strict=True) if not h.empty_layer]
    if layer_count is not None and len(layers) != layer_count:
        return HistoryLines([None] * layer_count, entries,
                            f"the history has {len(layers)} layer entries for {layer_count} layers")
    return HistoryLines(layers, entries, note)


def dockerfile_lines(history: Sequence[History], commands: list[str], dockerfile: str,
                     target: str | None = None, filename: str = "Dockerfile") -> HistoryLines:
    """:func:`history_lines` for the layers whose history ``commands`` are given; where the history
    stops matching, the remaining layers are matched by their text (:func:`layer_lines`)."""
    aligned = history_lines(history, dockerfile, target, len(commands), filename)
    if not aligned.note:
        return aligned
    texts = layer_lines(commands, dockerfile)
    return HistoryLines([a if a is not None else t for a, t in zip(aligned.layers, texts, strict=True)],
                        aligned.entries, aligned.note)
