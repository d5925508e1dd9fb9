"""Every shell command and Python example in the README and the guides runs, as written, and
gives what the page says it gives.

The fenced ``bash`` and ``python`` blocks of a page run in order in one fresh directory (a
block may use what an earlier one wrote), each as a ``bash -eo pipefail`` script or a Python
program, with ``sweeps/`` at hand as
in a clone. A page directs its own test with an HTML comment (invisible on the site) on the
line before a block:

- ``<!-- docs-test: expect REGEX -->``: the block's output must match (repeatable);
- ``<!-- docs-test: skip REASON -->``: not run here (needs a GPU, a network, ...);
- ``<!-- docs-test: slow -->``: run by ``pytest -m slow`` (CI), not by the default suite;
- ``<!-- docs-test: file NAME -->``: the block is written to ``NAME`` (a module the page's
  commands import) instead of run;
- ``<!-- docs-test: entry-points -->``: the block (``pyproject.toml``'s
  ``[project.entry-points."GROUP"]`` table) is installed as a distribution's entry points in
  the directory, which is on ``PYTHONPATH`` (as ``pip install`` of that package would).

Blocks are run on small data, never on a download: the registered datasets with files
(MNIST, Fashion-MNIST, CIFAR-10) are replaced by the embedded ``digits``, the epochs of a
training are capped at :data:`EPOCHS_CAP` unless the block expects a stated result, and a
campaign or search over one of those datasets is listed (``--dry-run``) instead of run.
``pip install ...`` in front of a command is dropped (the package is installed), and
``python -m pytest`` (this suite) and ``mkdocs serve`` (a server) are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md",
         *sorted((ROOT / "docs" / "guides").glob("*.md"))]  # fmt: skip
#: pages whose blocks run in the default suite; the rest under -m slow
FAST_PAGES = {"README.md", "deploy.md", "api.md", "own-rule.md", "device.md"}
EPOCHS_CAP = 2
DOWNLOADED = re.compile(r"(?i)^(mnist|fashion_mnist|cifar10)$")
#: bundled campaign settings and sweep files that train on a downloaded dataset
DOWNLOADED_CAMPAIGN = re.compile(r"(?i)(mnist|cifar)")
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*([\w-]+)\s*(.*?)\s*-->")
BLOCK = re.compile(r"^```(bash|sh|shell|python|toml)\n(.*?)^```", re.S | re.M)


@dataclass
class Block:
    page: str
    line: int
    text: str
    language: str = "bash"
    expect: list[str] = field(default_factory=list)
    skip: str | None = None
    slow: bool = False
    file: str | None = None
    entry_points: bool = False


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in BLOCK.finditer(text):
        start = text.count("\n", 0, match.start()) + 1
        block = Block(page.name, start, match.group(2), match.group(1))
        before = text[: match.start()].rstrip("\n").splitlines()
        while before and DIRECTIVE.search(before[-1]):
            kind, value = DIRECTIVE.search(before.pop()).groups()
            if kind == "expect":
                block.expect.append(value)
            elif kind == "skip":
                block.skip = value or "marked skip"
            elif kind == "slow":
                block.slow = True
            elif kind == "file":
                block.file = value
            elif kind == "entry-points":
                block.entry_points = True
            else:
                raise AssertionError(f"{page.name}:{start}: unknown docs-test directive {kind!r}")
        found.append(block)
    return found


def adapted(command: str, data_dir: Path, full: bool) -> str | None:
    """The command as the test runs it (see the module docstring); None: not run."""
    command = re.sub(r"^pip install [^&]*&&\s*", "", command.strip())
    if not command or command.startswith(("pip install", "mkdocs serve", "python -m pytest")):
        return None
    if not command.startswith("python -m binary_nn."):
        return command
    if " | " in command:  # a pipeline: the command adapted, what reads its output as it is
        head, tail = command.split(" | ", 1)
        first = adapted(head, data_dir, full)
        return None if first is None else f"{first} | {tail}"
    words = shlex.split(command, comments=True)
    module = words[2].split(".", 1)[1]
    rest = words[3:]
    out: list[str] = []
    skip_next = False
    for i, word in enumerate(rest):
        if skip_next:
            skip_next = False
            continue
        value = rest[i + 1] if i + 1 < len(rest) else ""
        if word in ("-d", "--dataset") and DOWNLOADED.match(value):
            out += [word, "digits"]
            skip_next = True
        elif word == "--data-dir":
            out += [word, str(data_dir)]
            skip_next = True
        elif word in ("-e", "--epochs") and not full and value.isdigit():
            out += [word, str(min(int(value), EPOCHS_CAP))]
            skip_next = True
        else:
            out.append(word)
    if module in ("repeat", "sweep") and rest and DOWNLOADED_CAMPAIGN.search(rest[0]):
        out.append("--dry-run")
    if module == "data" and rest[:1] in (["fetch"], ["verify"]):
        return None  # the downloader is tested against a server on 127.0.0.1 (test_data)
    return shlex.join([sys.executable, "-m", f"binary_nn.{module}", *out])


def install_entry_points(block: Block, work: Path) -> None:
    """A ``[project.entry-points."GROUP"]`` table as an installed distribution's metadata."""
    group = re.search(r'\[project\.entry-points\."([^"]+)"\]', block.text)
    assert group, f'{block.page}:{block.line}: no [project.entry-points."GROUP"] table'
    entries = re.findall(r'^\s*([\w.-]+)\s*=\s*"([^"]+)"', block.text, re.M)
    info = work / "docs_example-0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: docs-example\nVersion: 0.0\n")
    lines = [f"[{group.group(1)}]", *(f"{name} = {target}" for name, target in entries)]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def script(block: Block, data_dir: Path) -> str:
    if block.language == "python":
        return block.text
    joined = block.text.replace("\\\n", " ")
    lines = []
    for line in joined.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        command = adapted(line, data_dir, full=bool(block.expect))
        if command is not None:
            lines.append(command)
    return "\n".join(lines)


def page_params():
    """A page's blocks without its slow ones in the default suite (pages of
    :data:`FAST_PAGES`), and all of them under ``-m slow``."""
    params = []
    for page in PAGES:
        found = blocks(page)
        if not found:
            continue
        if page.name in FAST_PAGES:
            params.append(pytest.param(page, False, id=page.name))
            if not any(b.slow for b in found):
                continue
        params.append(pytest.param(page, True, id=f"{page.name}-all", marks=pytest.mark.slow))
    return params


@pytest.mark.parametrize(("page", "with_slow"), page_params())
def test_the_commands_of_a_page_run_and_say_what_it_says(page, with_slow, tmp_path):
    work, data_dir = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data_dir.mkdir()
    (work / "sweeps").symlink_to(ROOT / "sweeps")
    (work / "benchmarks").symlink_to(ROOT / "benchmarks")
    env = {**os.environ, "BINARY_NN_DATA": str(data_dir), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "WANDB_MODE": "disabled"}  # fmt: skip
    ran = 0
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
    for block in blocks(page):
        if block.skip or (block.slow and not with_slow):
            continue
        if block.file:
            (work / block.file).write_text(block.text)
            continue
        if block.entry_points:
            install_entry_points(block, work)
            continue
        if block.language == "toml":
            continue
        text = script(block, data_dir)
        if not text:
            continue
        command = [sys.executable, "-c", text] if block.language == "python" else [
            "bash", "-eo", "pipefail", "-c", text]  # fmt: skip
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=900
        )
        where = f"{block.page}:{block.line}"
        output = f"{text}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{output}"
        assert "Traceback" not in done.stderr, f"{where}:\n{output}"
        for pattern in block.expect:
            assert re.search(pattern, done.stdout), f"{where}: no match for {pattern!r}:\n{output}"
        ran += 1
    assert ran or all(b.skip or b.slow for b in blocks(page)), f"{page.name}: no block ran"


def test_directives_are_read_and_unknown_ones_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- docs-test: expect done: test accuracy 0\\.9 -->\n<!-- docs-test: slow -->\n"
        "```bash\npython -m binary_nn.train -d MNIST --data-dir ~/data -e 100\n```\n"
        "<!-- docs-test: skip needs a GPU -->\n```bash\nnvidia-smi\n```\n"
    )
    first, second = blocks(page)
    assert first.expect == [r"done: test accuracy 0\.9"] and first.slow and first.skip is None
    assert second.skip == "needs a GPU"
    capped = script(Block("p", 1, "python -m binary_nn.train -d MNIST --data-dir ~/d -e 100"),
                    tmp_path)  # fmt: skip
    assert "-d digits" in capped and f"--data-dir {tmp_path}" in capped and "-e 2" in capped
    listed = adapted("python -m binary_nn.repeat mnist --seeds 1", tmp_path, full=False)
    assert listed is not None and listed.endswith("--dry-run")
    page.write_text("<!-- docs-test: sometimes -->\n```bash\ntrue\n```\n")
    with pytest.raises(AssertionError, match="unknown docs-test directive"):
        blocks(page)
