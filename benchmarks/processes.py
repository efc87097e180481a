"""Whole processes for benchmarks/bench.py: the `newsletter` CLI with its own peak RSS,
the Node peer kept warm, and what the machine and the peers are."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE.parent / ".cache" / "bench" / "node"
MJML_VERSION = "5.4.1"
JUICE_VERSION = "11.1.1"

# The command as `newsletter` runs it, plus this process's own peak (VmHWM) written at exit:
# ru_maxrss would carry the parent's peak across the exec.
_CLI = """
import atexit, sys
from pathlib import Path
def peak(out=Path(sys.argv[1])):
    status = Path("/proc/self/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    out.write_text(str(kb))
atexit.register(peak)
sys.argv = ["newsletter", *sys.argv[2:]]
from newsletter.cli import main
main()
"""


@dataclass(frozen=True)
class Run:
    seconds: float  # wall clock, process start to exit
    cpu: float  # user + system seconds of the process
    rss_mb: float  # its own peak resident set


def cli(args: list[str], env: dict[str, str] | None = None) -> Run:
    """`newsletter ARGS` as a whole process; fails loudly if the command fails."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        return _timed([sys.executable, "-c", _CLI, rss.name, *args], env, Path(rss.name))


def process(args: list[str], env: dict[str, str] | None = None) -> Run:
    """Any command as a whole process (its RSS not measured)."""
    return _timed(args, env, None)


def _timed(args: list[str], env: dict[str, str] | None, rss: Path | None) -> Run:
    started = time.perf_counter()
    child = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args[-4:])}: exit {child.returncode}: {errors.decode()[-2000:]}")
    kb = int(rss.read_text() or 0) if rss is not None and rss.exists() else 0
    return Run(seconds, usage.ru_utime + usage.ru_stime, kb / 1024)


class NodePeer:
    """npm `mjml` + `juice` in one warm node process (benchmarks/peer_mjml.js)."""

    def __init__(self, mjml_file: Path) -> None:
        self.child = subprocess.Popen(
            ["node", str(HERE / "peer_mjml.js"), str(mjml_file)],
            env={**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def render(self) -> tuple[float, float, int]:
        """One render: (ms, CPU ms, HTML bytes)."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("\n")
        self.child.stdin.flush()
        ms, cpu, size = self.child.stdout.readline().split()
        return float(ms), float(cpu), int(size)

    def close(self) -> None:
        if self.child.stdin is not None:
            self.child.stdin.close()
        self.child.wait(timeout=10)


def install_node_peer() -> str:
    """npm mjml and juice, pinned, into .cache/bench/node; "" when ready, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed: the Node peer is skipped"
    wanted = {"mjml": MJML_VERSION, "juice": JUICE_VERSION}
    if all(_node_version(name) == version for name, version in wanted.items()):
        return ""
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in wanted.items()]
    done = subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), *specs],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"npm install failed (no registry?): the Node peer is skipped ({done.stderr.strip()[-200:]})"
    return ""


def _node_version(package: str) -> str:
    found = NODE_DIR / "node_modules" / package / "package.json"
    return str(json.loads(found.read_text())["version"]) if found.exists() else ""


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {"cores": os.cpu_count(), "cpu": model, "system": platform.platform()}


def versions() -> dict[str, str]:
    node = (
        subprocess.run(["node", "--version"], capture_output=True, text=True)
        if shutil.which("node")
        else None
    )
    return {
        "python": platform.python_version(),
        "mjml-python": metadata.version("mjml-python"),
        "premailer": metadata.version("premailer"),
        "node": node.stdout.strip() if node and node.returncode == 0 else "",
        "mjml": _node_version("mjml"),
        "juice": _node_version("juice"),
    }
