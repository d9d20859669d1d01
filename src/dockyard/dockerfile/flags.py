"""Instruction ``--flag`` parsing (BuildKit's BFlags), with "did you mean" for a misspelt flag."""

from __future__ import annotations

import enum

from dockyard.dockerfile.suggest import wrap_suggestion
from dockyard.errors import DockerfileError
from dockyard.record import field, record


class FlagType(enum.Enum):
    BOOL = "bool"
    STRING = "string"
    STRINGS = "strings"


@record(slots=True)
class Flag:
    """One declared flag and, after :meth:`BFlags.parse`, its value(s)."""

    name: str
    type: FlagType
    value: str = ""
    values: list[str] = field(default_factory=list)

    @property
    def is_true(self) -> bool:
        return self.value == "true"


_SHARED_DEFAULTS: dict[tuple[str, FlagType, str], Flag] = {}


class BFlags:
    """Declare the flags an instruction takes, then parse the words the parser split off."""

    def __init__(self, args: list[str]) -> None:
        self.args = list(args)
        self.flags: dict[str, Flag] = {}
        self.used: dict[str, Flag] = {}

    def _add(self, name: str, kind: FlagType, default: str) -> Flag:
        if not self.args:
            # Nothing to parse: every instruction without flags shares one read-only default Flag.
            key = (name, kind, default)
            shared = _SHARED_DEFAULTS.get(key)
            if shared is None:
                shared = _SHARED_DEFAULTS[key] = Flag(name, kind, default)
            return shared
        if name in self.flags:
            raise DockerfileError(f"error setting up flags: Duplicate flag defined: {name}")
        flag = Flag(name, kind, default)
        self.flags[name] = flag
        return flag

    def add_bool(self, name: str, default: bool = False) -> Flag:
        return self._add(name, FlagType.BOOL, "true" if default else "false")

    def add_string(self, name: str, default: str = "") -> Flag:
        return self._add(name, FlagType.STRING, default)

    def add_strings(self, name: str) -> Flag:
        return self._add(name, FlagType.STRINGS, "")

    def is_used(self, name: str) -> bool:
        return name in self.used

    def parse(self) -> None:
        """Apply the words; raise DockerfileError with BuildKit's texts for a bad flag."""
        for arg in self.args:
            if not arg.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {arg}")
            if arg == "--":
                return
            name, eq, value = arg[2:].partition("=")
            has_value = bool(eq)
            flag = self.flags.get(name)
            if flag is None:
                raise DockerfileError(wrap_suggestion(f"unknown flag: --{name}", name, list(self.flags),
                                                      prefix="--"))
            if name in self.used and flag.type is not FlagType.STRINGS:
                raise DockerfileError(f"duplicate flag specified: {name}")
            self.used[name] = flag
            if flag.type is FlagType.BOOL:
                if has_value and value == "":
                    raise DockerfileError(f"missing a value on flag: {name}")
                low = value.lower()
                if low in ("true", ""):
                    flag.value = "true"
                elif low == "false":
                    flag.value = "false"
                else:
                    raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}")
            elif flag.type is FlagType.STRING:
                if not has_value:
                    raise DockerfileError(f"missing a value on flag: {name}")
                flag.value = value
            else:
                if not has_value:
                    raise DockerfileError(f"missing a value on flag: {name}")
                flag.values.append(value)
