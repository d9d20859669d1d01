"""Go's ``text/template``: lexer, parser, executor and predefined functions, with Go's texts.

    tmpl = Template("{{range .}}{{upper .}} {{end}}", funcs={"upper": Func(str.upper, arity=1,
                                                                          params=("string",))})
    tmpl.execute(["a", "b"])  # "A B "; errors raise TemplateError("template: :1:2: ...")

Values follow Go: a dict is a map (sorted in range/print/json; a missing key is ``<no value>``), a
``Context`` or other object is a struct (a missing field is an error), None is ``<nil>``, lists print
as ``[a b]``, maps as ``map[k:v]``. A callable field value is called, like a Go method.

Modules: ``lexer`` (tokens), ``nodes`` and ``parser`` (tree), ``exec`` (executor), ``funcs``
(predefined functions, ``Func``), ``printf`` (Go's fmt verbs), ``values`` (Go views of Python values).
"""

from __future__ import annotations

from dockyard.gotemplate.errors import ArgError, CallError, TemplateError
from dockyard.gotemplate.funcs import BUILTINS, Func, want_int, want_str
from dockyard.gotemplate.printf import go_sprintf
from dockyard.gotemplate.template import Template
from dockyard.gotemplate.values import NO_VALUE, Context, go_json, go_str, go_type

__all__ = ["BUILTINS", "NO_VALUE", "ArgError", "CallError", "Context", "Func", "Template", "TemplateError",
           "go_json", "go_sprintf", "go_str", "go_type", "want_int", "want_str"]
