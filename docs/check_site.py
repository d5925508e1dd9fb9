"""Check a built site for what mkdocs --strict lets through: raw Sphinx roles in the API
reference (``:class:`` ...) and unrendered cross-references. ``python docs/check_site.py SITE``
exits 1 naming each page and what it shows."""

from __future__ import annotations

import re
import sys
from pathlib import Path

RAW = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):(?:<code>|`)")
UNRESOLVED = re.compile(r"\[<code>[^<]*</code>\]\[[^\]]*\]")


def problems(site: Path) -> list[str]:
    found = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(errors="replace")
        for pattern, what in ((RAW, "a raw Sphinx role"), (UNRESOLVED, "an unresolved reference")):
            count = len(pattern.findall(html))
            if count:
                found.append(f"{page.relative_to(site)}: {count} x {what}")
    return found


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python docs/check_site.py SITE_DIR (a site mkdocs built)")
    found = problems(Path(sys.argv[1]))
    print("\n".join(found) or "the site shows no raw role and no unresolved reference")
    sys.exit(1 if found else 0)
