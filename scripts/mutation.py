#!/usr/bin/env python3
"""Mutation testing of the modules where a silent bug costs most (``make mutation``).

Reads ``mutation/modules.toml``; for each module (or those named on the command line) makes a
scratch copy of src/ and tests/ under ``build/mutation/<name>/``, runs mutmut there on one worker
with only that module's tests, and prints killed / total per module (equivalent mutants excluded).
Survivors are written with their diffs to ``build/mutation/<name>/survivors.txt``.
Exit status 1 when a module scores under the target, 2 when a module's run failed.

    scripts/mutation.py                 every module
    scripts/mutation.py oci-digest      one module
    scripts/mutation.py --report        recount the last runs without running mutmut again
    scripts/mutation.py --retest NAME   rerun only NAME's survivors (after adding tests)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "mutation" / "modules.toml"
WORK = REPO / "build" / "mutation"

# mutmut's exit codes (mutmut.stats.status_by_exit_code): what counts as a kill.
KILLED = {1, 3, 36, 37, 24, -24, 152, 255, -11, -9}  # failed, pytest error, timeout, type check, crash
SURVIVED = {0}
NO_TESTS = {5, 33}
SKIPPED = {34}


@dataclass
class Module:
    name: str
    files: list[str]
    tests: list[str]
    functions: list[str] = field(default_factory=list)
    marks: str = ""
    pytest_args: list[str] = field(default_factory=list)
    equivalent: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, str] = field(default_factory=dict)

    @property
    def modnames(self) -> list[str]:
        return [f.removeprefix("src/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")
                for f in self.files]

    def globs(self) -> list[str]:
        """mutmut name patterns for this module's mutants."""
        if not self.functions:
            return [f"{m}.*" for m in self.modnames]
        return [f"{m}.{f}" for m in self.modnames for f in self.functions]

    def wants(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, g) for g in self.globs())


@dataclass
class Score:
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    skipped: int = 0
    unchecked: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Mutants with a verdict (an interrupted run leaves some unchecked; they are not counted)."""
        return self.killed + len(self.survived)

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def load_config() -> tuple[dict[str, object], dict[str, Module]]:
    data = tomllib.loads(CONFIG.read_text())
    modules = {}
    for name, body in data.get("modules", {}).items():
        unknown = set(body) - {"files", "tests", "functions", "marks", "pytest_args", "equivalent",
                              "accepted"}
        if unknown:
            raise SystemExit(f"{CONFIG}: [modules.{name}]: unknown keys {sorted(unknown)}")
        modules[name] = Module(name=name, **body)
    return data.get("settings", {}), modules


def prepare(module: Module, settings: dict[str, object], *, fresh: bool = True) -> Path:
    """The module's scratch tree: src/, tests/, pyproject.toml and mutmut's setup.cfg.

    ``fresh=False`` keeps the mutants and their results and only refreshes tests/ and setup.cfg.
    """
    work = WORK / module.name
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    if fresh:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        shutil.copytree(REPO / "src", work / "src", ignore=ignore)
        shutil.copy2(REPO / "pyproject.toml", work / "pyproject.toml")
        # tests find the peer scripts in <repo>/scripts/peers (their data travels with tests/)
        shutil.copytree(REPO / "scripts", work / "scripts", ignore=ignore)
    elif not (work / "mutants").is_dir():
        raise SystemExit(f"[{module.name}] nothing to retest: run it first")
    shutil.copytree(REPO / "tests", work / "tests", ignore=ignore, dirs_exist_ok=True)

    def listing(key: str, values: list[str]) -> str:
        return f"{key} =\n" + "".join(f"    {v}\n" for v in values)

    pytest_args = [str(a) for a in settings.get("pytest_args", [])]  # type: ignore[attr-defined]
    if module.marks:
        pytest_args += ["-m", module.marks]  # the last -m wins
    pytest_args += module.pytest_args
    (work / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths = src\n"
        + listing("only_mutate", module.files)
        + listing("pytest_add_cli_args_test_selection", module.tests)
        + listing("pytest_add_cli_args", pytest_args)
        + f"timeout_multiplier = {settings.get('timeout_multiplier', 5.0)}\n"
        f"timeout_constant = {settings.get('timeout_constant', 5.0)}\n"
        "use_git_change_detection = false\n"
    )
    return work


def run(module: Module, settings: dict[str, object], *, retest: bool = False) -> None:
    """Run mutmut for the module; ``retest`` runs only the last run's survivors against new tests."""
    names = module.globs()
    if retest:
        last = score(module)
        names = last.survived + last.unchecked
        if not names:
            return
    work = prepare(module, settings, fresh=not retest)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    log = work / "mutmut.log"
    started = time.monotonic()
    print(f"[{module.name}] mutating {', '.join(module.files)} with {' '.join(module.tests)}", flush=True)
    with log.open("wb") as out:
        rc = subprocess.call([mutmut, "run", "--max-children", "1", *names], cwd=work, env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    print(f"[{module.name}] mutmut exited {rc} after {time.monotonic() - started:.0f}s (log: {log})",
          flush=True)
    if rc != 0:
        raise RuntimeError(f"mutmut exited {rc}; see {log}")


def score(module: Module) -> Score:
    work = WORK / module.name
    result = Score()
    killed_equivalents: list[str] = []
    for file in module.files:
        meta = work / "mutants" / (file + ".meta")
        if not meta.is_file():
            raise SystemExit(f"[{module.name}] no results in {meta}: run it first")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for key, code in sorted(codes.items()):
            if not module.wants(key):
                continue
            if code in SKIPPED:
                result.skipped += 1
            elif key in module.equivalent:
                result.equivalent.append(key)
                if code in KILLED:
                    killed_equivalents.append(key)
            elif code in KILLED:
                result.killed += 1
            elif code in SURVIVED or code in NO_TESTS:
                result.survived.append(key)
            else:
                result.unchecked.append(key)
    stale = set(module.equivalent) - set(result.equivalent)
    if stale:
        print(f"[{module.name}] warning: listed equivalents not found (renumbered?): {sorted(stale)}")
    if killed_equivalents:  # an equivalent mutant cannot be killed: the name now belongs to another one
        print(f"[{module.name}] warning: listed equivalents were killed (renumbered?): {killed_equivalents}")
    return result


_SHOW = """
import sys
import mutmut.__main__ as mm
for key in sys.argv[1:]:
    m = mm.find_mutant(key)
    print("=== " + key)
    print(mm.get_diff_for_mutant(key, path=m.path))
"""


def write_survivors(module: Module, result: Score) -> None:
    """The survivors' diffs, in one mutmut process (``mutmut show`` costs a start-up each)."""
    work = WORK / module.name
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    keys = result.survived + result.unchecked
    shown = subprocess.run([sys.executable, "-c", _SHOW, *keys], cwd=work, env=env, capture_output=True,
                           text=True).stdout if keys else ""
    for key, why in module.accepted.items():
        shown = shown.replace(f"=== {key}\n", f"=== {key}  (accepted: {why})\n")
    (work / "survivors.txt").write_text(shown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module names from mutation/modules.toml (default: all)")
    parser.add_argument("--report", action="store_true", help="only recount the last runs")
    parser.add_argument("--retest", action="store_true",
                        help="rerun only the last run's survivors, with the current tests")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the score table and the equivalent/accepted lists as Markdown")
    opts = parser.parse_args()
    settings, modules = load_config()
    names = opts.modules or list(modules)
    unknown = [n for n in names if n not in modules]
    if unknown:
        print(f"unknown module(s) {unknown}; known: {', '.join(modules)}", file=sys.stderr)
        return 2
    target = float(settings.get("target", 90.0))  # type: ignore[arg-type]
    rows = []
    broken: list[str] = []
    for name in names:
        module = modules[name]
        try:
            if not opts.report:
                run(module, settings, retest=opts.retest)
            result = score(module)
        except (RuntimeError, SystemExit) as exc:  # one broken module does not stop the others
            print(f"[{name}] FAILED: {exc}", flush=True)
            broken.append(name)
            continue
        write_survivors(module, result)
        rows.append((name, result))
        print(f"[{name}] {result.killed}/{result.total} killed = {result.percent:.1f}% "
              f"({len(result.equivalent)} equivalent excluded, {len(result.survived)} survived)", flush=True)
    print(f"\n{'module':30} {'killed':>7} {'total':>6} {'score':>7} {'equiv':>6} {'not run':>7}")
    failed = False
    for name, result in rows:
        mark = "" if result.percent >= target else "  < target"
        failed = failed or bool(mark)
        print(f"{name:30} {result.killed:7} {result.total:6} {result.percent:6.1f}% "
              f"{len(result.equivalent):6} {len(result.unchecked):7}{mark}")
    if broken:
        print(f"not scored (the run failed): {', '.join(broken)}")
    if opts.markdown:
        print(markdown(rows, modules))
    return 2 if broken else 1 if failed else 0


def markdown(rows: list[tuple[str, Score]], modules: dict[str, Module]) -> str:
    """The score table and, per module, the equivalent and accepted mutants with their reasons."""
    out = ["| module | files | killed / total | score | equivalent | survived | not run |",
           "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        files = ", ".join(f"`{f.removeprefix('src/dockyard/')}`" for f in modules[name].files)
        out.append(f"| {name} | {files} | {r.killed} / {r.total} | {r.percent:.1f} % | {len(r.equivalent)} "
                   f"| {len(r.survived)} | {len(r.unchecked)} |")
    for name, r in rows:
        module = modules[name]
        if not (module.equivalent or r.survived):
            continue
        out.append(f"\n### {name}\n")
        for key in sorted(module.equivalent):
            out.append(f"- equivalent `{key.rpartition('.')[2]}`: {module.equivalent[key]}")
        for key in r.survived:
            why = module.accepted.get(key, "not yet killed")
            out.append(f"- survives `{key.rpartition('.')[2]}`: {why}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
