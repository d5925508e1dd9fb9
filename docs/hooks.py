"""MkDocs hook: tables generated from the code, so that the docs cannot drift from it."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- options-table -->"


def options_table() -> str:
    """Every option of ``python -m binary_nn.train`` by group: flags, default, help."""
    import dataclasses

    from binary_nn.options import GROUPS, options_of
    from binary_nn.run.config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    lines = []
    for group, title in GROUPS.items():
        rows = [(name, opt) for name, opt in options_of(TrainConfig).items() if opt.group == group]
        if not rows:
            continue
        lines += [
            f"**{title}**", "",
            "| flag | `TrainConfig` field, settings key | default | meaning |", "|---|---|---|---|",
        ]  # fmt: skip
        for name, opt in rows:
            default = defaults[name]
            if isinstance(default, tuple):
                default = ",".join(map(str, default))
            shown = "off" if default is False else "—" if default in (None, "") else f"`{default}`"
            flags = ", ".join(f"`{flag}`" for flag in opt.flags)
            text = opt.help.replace("|", "\\|")
            lines.append(f"| {flags} | `{name}` | {shown} | {text} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, options_table())
    return markdown
