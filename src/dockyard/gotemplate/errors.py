"""The engine's exceptions: Go's parse errors and the two ways a template function can fail."""

from __future__ import annotations


class TemplateError(Exception):
    """A template that cannot be parsed or executed; the message is Go's (``template: :1:2: ...``)."""


class ArgError(Exception):
    """A function argument had the wrong type (reported without 'error calling')."""


class CallError(Exception):
    """A function returned an error (reported as 'error calling NAME: ...')."""
