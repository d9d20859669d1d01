"""Instructions that change only the image config: ENV, ARG, LABEL, EXPOSE, VOLUME, USER, CMD,
ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, MAINTAINER, ONBUILD.

Each plans a ``Step`` with no action: its cache definition, the ``created_by`` text BuildKit writes
into the history, and the config change the engine applies only when the step misses the cache.
BuildKit shows none of them as a build step.
"""

from __future__ import annotations

from typing import Any

from dockyard import goformat
from dockyard.builder.state import StageState
from dockyard.builder.steps import Step
from dockyard.dockerfile import (
    ArgInstruction,
    CmdInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    ShellInstruction,
    StopSignalInstruction,
    UserInstruction,
    VolumeInstruction,
    parse_port_spec,
)


def plan(instr: Instruction, state: StageState, arg_text: str = "") -> Step | None:
    """The step of a config-only instruction, or None for other kinds.

    ``arg_text`` is an ARG's history text: its words as written (defaults expanded), not the values
    build args gave them. An empty ``created_by`` means the step leaves no history entry."""
    if isinstance(instr, EnvInstruction):
        pairs = [(p.key, p.value) for p in instr.env]

        def env(s: StageState) -> None:
            for k, v in pairs:
                s.set_env(k, v)
        return Step(["env", pairs], "ENV " + " ".join(f"{k}={v}" for k, v in pairs), env)
    if isinstance(instr, ArgInstruction):
        shown = [f"{a.key}={a.value}" if a.value is not None else a.key for a in instr.args]
        return Step(["arg", shown], "ARG " + (arg_text or " ".join(shown)), lambda s: None)
    if isinstance(instr, LabelInstruction):
        labels = [(p.key, p.value) for p in instr.labels]

        def label(s: StageState) -> None:
            current = dict(s.run.get("Labels") or {})
            current.update(labels)
            s.run["Labels"] = current
        return Step(["label", labels], "LABEL " + " ".join(f"{k}={v}" for k, v in labels), label)
    if isinstance(instr, ExposeInstruction):
        ports = [p for word in instr.ports for p in parse_port_spec(word).exposed_keys()]

        def expose(s: StageState) -> None:
            current = dict(s.run.get("ExposedPorts") or {})
            for p in ports:
                current[p] = {}
            s.run["ExposedPorts"] = current
        port_map = " ".join(f"{p}:{{}}" for p in sorted(set(ports)))
        return Step(["expose", ports], f"EXPOSE map[{port_map}]", expose)
    if isinstance(instr, VolumeInstruction):
        vols = list(instr.volumes)

        def volume(s: StageState) -> None:
            current = dict(s.run.get("Volumes") or {})
            for v in vols:
                current[v] = {}
            s.run["Volumes"] = current
        return Step(["volume", vols], f"VOLUME {goformat.quote_list(vols)}".replace('"', ""), volume)
    if isinstance(instr, UserInstruction):
        user = instr.user
        return Step(["user", user], f"USER {user}", lambda s: s.run.__setitem__("User", user))
    if isinstance(instr, CmdInstruction | EntrypointInstruction):
        args = list(instr.cmd_line)
        if instr.prepend_shell:
            args = [*state.shell, " ".join(args)]
        key = "Cmd" if isinstance(instr, CmdInstruction) else "Entrypoint"

        def command(s: StageState) -> None:
            # An empty list is omitted from the config, as BuildKit's omitempty fields.
            if args:
                s.run[key] = args
            else:
                s.run.pop(key, None)
            if key == "Cmd":
                s.run["ArgsEscaped"] = True  # BuildKit 0.8 sets it for every CMD (Docker 20.10 shows it)
            if key == "Entrypoint" and "Cmd" in s.run_config_from_base:
                # Docker: an ENTRYPOINT resets a CMD inherited from the base image (the key goes).
                s.run.pop("Cmd", None)
            s.run_config_from_base.discard(key)
        return Step([key.lower(), args], f"{key.upper()} {goformat.quote_list(args)}", command)
    if isinstance(instr, ShellInstruction):
        shell = list(instr.shell)
        # Go's %v of the slice, as BuildKit writes it: SHELL [/bin/sh -c]
        return Step(["shell", shell], f"SHELL {goformat.format_list(shell)}",
                    lambda s: s.run.__setitem__("Shell", shell))
    if isinstance(instr, StopSignalInstruction):
        sig = instr.signal
        return Step(["stopsignal", sig], f"STOPSIGNAL {sig}", lambda s: s.run.__setitem__("StopSignal", sig))
    if isinstance(instr, HealthcheckInstruction):
        check: dict[str, Any] = {"Test": list(instr.test)}
        for field_name, value in (("Interval", instr.interval), ("Timeout", instr.timeout),
                                  ("StartPeriod", instr.start_period),
                                  ("StartInterval", instr.start_interval), ("Retries", instr.retries)):
            if value:
                check[field_name] = value
        # BuildKit writes Go's %q of its HealthConfig: &{["CMD" "x"] "30s" "0s" "0s" '\x03'}
        q, d = goformat.quote_list, goformat.format_duration
        text = (f"HEALTHCHECK &{{{q(check['Test'])} \"{d(instr.interval)}\" \"{d(instr.timeout)}\" "
                f"\"{d(instr.start_period)}\" {goformat.quote_rune(instr.retries)}}}")
        return Step(["healthcheck", check], text, lambda s: s.run.__setitem__("Healthcheck", check))
    if isinstance(instr, MaintainerInstruction):
        author = instr.maintainer
        return Step(["maintainer", author], f"MAINTAINER {author}",
                    lambda s: setattr(s.config, "author", author))
    if isinstance(instr, OnbuildInstruction):
        expr = instr.expression

        def onbuild(s: StageState) -> None:
            s.run["OnBuild"] = [*(s.run.get("OnBuild") or []), expr]
        return Step(["onbuild", expr], "", onbuild)  # BuildKit records no history for ONBUILD
    return None
