"""Build and run the exported device learner: on the host (``cc``), and for a Cortex-M4F
(``arm-none-eabi-gcc``) under QEMU (``qemu-system-arm -M mps2-an386 -semihosting``).

Instructions are counted with QEMU's ``-icount shift=0`` (one instruction is one nanosecond of
virtual time) and the SysTick timer, which counts the board's 25 MHz clock: 40 instructions a
tick, which the harness checks against a loop of known length (its calibration line).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .c_learn import linker_script

HOST_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
ARM_FLAGS = (
    "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-mcpu=cortex-m4", "-mthumb",
    "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-ffreestanding", "-nostdlib",
    "-Wl,--gc-sections",
)  # fmt: skip
LIBRARY_SOURCES = ("bnn_learn.c", "bnn_learn_model.c")
QEMU = (
    "qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor",
    "none", "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount",
    "shift=0", "-kernel",
)  # fmt: skip
#: instructions per SysTick tick under -icount shift=0 on mps2-an386 (25 MHz)
INSTRUCTIONS_PER_TICK = 40


def toolchain_missing() -> str | None:
    """Why the Cortex-M build cannot run here (None: it can)."""
    for tool, package in (
        ("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
        ("qemu-system-arm", "qemu-system-arm"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install {package})"
    return None


def _compile(command: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        if any("does not fit the RAM budget" in line or "overflowed" in line for line in detail):
            raise ConfigError(f"{what}: the model does not fit the RAM budget")
        errors = [line for line in detail if "error" in line] or detail
        raise ConfigError(f"{what} failed: {errors[0] if errors else done.returncode}")


def build_host(directory: Path, compiler: str = "cc") -> Path:
    """``learn_example`` built on the host with the strict C99 flags; its path."""
    exe = directory / "learn_example"
    _compile(
        [compiler, *HOST_FLAGS, "learn_example.c", *LIBRARY_SOURCES, "-o", exe.name],
        directory, "the host build",
    )  # fmt: skip
    return exe


def build_mcu(directory: Path, ram_bytes: int) -> Path:
    """The Cortex-M4F image (``mcu/learn.elf``) with ``ram_bytes`` of RAM."""
    mcu = directory / "mcu"
    (mcu / "link.ld").write_text(linker_script(ram_bytes))
    elf = mcu / "learn.elf"
    _compile(
        ["arm-none-eabi-gcc", *ARM_FLAGS, "-I.", "-T", "mcu/link.ld", "mcu/startup.c",
         "mcu/mcu_main.c", *LIBRARY_SOURCES, "-lgcc", "-o", "mcu/learn.elf"],
        directory, "the Cortex-M4F build",
    )  # fmt: skip
    return elf


def section_sizes(elf: Path) -> dict[str, int]:
    """The image's section sizes in bytes (``arm-none-eabi-size -A``)."""
    out = subprocess.run(
        ["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


@dataclass
class McuRun:
    """What the emulated device printed: the lines a host build prints, and measurements."""

    lines: list[str]
    measured: dict[str, int]

    @property
    def instructions_per_step(self) -> float:
        steps = max(1, self.measured.get("learn_steps", 0))
        return self.measured.get("learn_ticks", 0) * INSTRUCTIONS_PER_TICK / steps

    @property
    def ticks_checked(self) -> bool:
        """Whether the calibration loop of 2,000,000 instructions took 50,000 ticks."""
        calibration = self.measured.get("calibration_ticks_per_2000000_instructions", 0)
        return abs(calibration * INSTRUCTIONS_PER_TICK - 2_000_000) <= 2 * INSTRUCTIONS_PER_TICK


def run_host(exe: Path, records: bytes, timeout: float = 600) -> list[str]:
    """The lines the host build prints for a record stream."""
    done = subprocess.run([str(exe.resolve())], input=records, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise ConfigError(f"the host build failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().splitlines()


def run_mcu(elf: Path, records: bytes, timeout: float = 600) -> McuRun:
    """Run the image under QEMU on a record stream (semihosting stdin); its output comes back
    on QEMU's stderr, the measurement lines starting with ``#``."""
    done = subprocess.run([*QEMU, str(elf)], input=records, capture_output=True, timeout=timeout)
    text = done.stderr.decode(errors="replace").splitlines()
    if done.returncode != 0:
        raise ConfigError(f"the emulated device stopped with exit code {done.returncode}: "
                          f"{text[-1] if text else 'no output'}")  # fmt: skip
    lines = [line for line in text if not line.startswith("#")]
    measured = {}
    for line in text:
        if line.startswith("# "):
            name, _, value = line[2:].partition(" ")
            if value.strip().lstrip("-").isdigit():
                measured[name] = int(value)
    return McuRun(lines, measured)
