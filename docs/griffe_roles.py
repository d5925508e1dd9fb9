"""Griffe extension for the API reference: the Sphinx roles of numpydoc docstrings
(``:class:`Network```, ``:meth:`~binary_nn.run.probes.Probe.due```) become cross-references
that mkdocstrings renders as links, resolved in the scope of the object that holds the
docstring; a name that is not documented on any page shows as plain code (never as a raw
role). The docstrings stay numpydoc, readable in ``help()`` and in an editor."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([^`]+?)`")


def _identifier(obj: griffe.Object, target: str) -> str | None:
    """The full dotted path of ``target`` as seen from ``obj`` (None when it does not resolve)."""
    if target.startswith("binary_nn"):
        return target
    head, _, rest = target.lstrip(".").partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            found = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
            continue
        return f"{found}.{rest}" if rest else found
    return None


def to_reference(match: re.Match[str], obj: griffe.Object) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    title = target.rsplit(".", 1)[-1] if short else target
    identifier = _identifier(obj, target)
    if identifier is None:
        return f"`{title}`"
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring's roles as the object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(lambda m: to_reference(m, obj), obj.docstring.value)
