"""``dockyard analyze --interactive``: dive's main mode on textual: the layers, and the file tree of the
one selected (what it added, modified, removed), with the bytes it made removable and their fix."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import DataTable, Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from dockyard.cli.analyze_cmd import si_bytes
from dockyard.tools.analyze import Analysis
from dockyard.tools.analyze.waste import plain_command

_MARK = {"added": "+", "modified": "~", "removed": "-"}
_STYLE = {"added": "green", "modified": "yellow", "removed": "red"}


def _tree_data(changes: list[tuple[str, int, str]]) -> dict[str, Any]:
    """Nested dicts: directory -> children; a file is (bytes, kind)."""
    root: dict[str, Any] = {}
    for path, size, kind in changes:
        parts = path.strip("/").split("/")
        node = root
        for name in parts[:-1]:
            child = node.setdefault(name + "/", {})
            node = child if isinstance(child, dict) else node
        node[parts[-1]] = (size, kind)
    return root


def _total(node: dict[str, Any]) -> int:
    return sum(_total(v) if isinstance(v, dict) else v[0] for v in node.values())


class AnalyzeApp(App[None]):
    """Layers on the left, the selected layer's changes as a tree on the right, removable bytes below."""

    TITLE = "dockyard analyze"
    CSS = """
    #layers { width: 45%; }
    #files { width: 55%; }
    #detail { height: 7; border-top: solid $primary; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("q", "quit", "Quit"), Binding("tab", "focus_next", "Switch pane")]

    def __init__(self, analysis: Analysis) -> None:
        super().__init__()
        self.analysis = analysis

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            with Horizontal():
                yield DataTable(id="layers", cursor_type="row", zebra_stripes=True)
                yield Tree("/", id="files")
            yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#layers", DataTable)
        table.add_columns("#", "size", "removable", "command")
        waste = self.analysis.waste
        removable = {lw.index: lw.removable for lw in waste.layers} if waste else {}
        for r in self.analysis.layers:
            table.add_row(str(r.index), si_bytes(r.size), si_bytes(removable.get(r.index, 0)),
                          escape(plain_command(r.command)[:80]), key=str(r.index))
        self.title = f"{self.analysis.image}: {si_bytes(self.analysis.size)}, " + (
            f"removable {si_bytes(waste.total)}" if waste else "")
        self.show_layer(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_layer(event.cursor_row)

    def show_layer(self, index: int) -> None:
        """Fill the tree with layer ``index``'s changes and the detail line with its blame."""
        waste = self.analysis.waste
        changes = waste.changes[index] if waste and index < len(waste.changes) else []
        tree = self.query_one("#files", Tree)
        tree.clear()
        tree.root.set_label(f"/ ({len(changes)} files, {si_bytes(sum(s for _, s, _ in changes))})")
        self._fill(tree.root, _tree_data(changes))
        tree.root.expand_all()
        detail = self.query_one("#detail", Static)
        layer = self.analysis.layers[index]
        lines = [f"layer {index}: {plain_command(layer.command)}",
                 f"added {layer.added}, modified {layer.modified}, removed {layer.removed}"]
        blame = next((lw for lw in waste.layers if lw.index == index), None) if waste else None
        if blame is not None:
            kinds = ", ".join(f"{k} {si_bytes(v)}" for k, v in blame.by_kind.items())
            where = f" (Dockerfile line {blame.line})" if blame.line else ""
            lines += [f"makes {si_bytes(blame.removable)} of lower layers removable{where}: {kinds}",
                      f"fix: {blame.fix}"]
        detail.update("\n".join(escape(line) for line in lines))  # names and history are not markup

    def _fill(self, parent: TreeNode[str], data: dict[str, Any]) -> None:
        for name in sorted(data, key=lambda n: (not n.endswith("/"), n)):
            value = data[name]
            if isinstance(value, dict):
                branch = parent.add(f"{escape(name)} ({si_bytes(_total(value))})", data=name)
                self._fill(branch, value)
            else:
                size, kind = value
                label = f"[{_STYLE[kind]}]{_MARK[kind]} {escape(name)}[/] {si_bytes(size)}"
                parent.add_leaf(label, data=name)
