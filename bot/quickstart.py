"""Set the project up in a local virtual environment and run one of its jobs.

A newcomer has nothing but Python, so this module uses only the standard library and is run
straight from a clone (``python3 -m bot.quickstart test``). It creates ``.venv`` beside the
sources, installs PyTorch 2.13.0 *first* (the CPU wheel; a bare ``torch`` requirement would pull
gigabytes of CUDA packages), then the project itself in editable mode, and finally runs the job.
The install is skipped when ``pyproject.toml`` has not changed since the last one.

Jobs:
  run    the main job: `bot demo` — the local Bybit-compatible exchange replays real bars
         (../shared/data, or synthetic ones) and the paper-trading daemon trades them live,
         then a backtest of the same bars confirms the two agree value for value
  test   the whole test suite (fast and slow tests); extra arguments go to pytest
  bench  the replay benchmark against backtrader and NautilusTrader (own venv: .venv-bench)
  bot    any ``bot`` subcommand, e.g. ``python3 -m bot.quickstart bot runs list``
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0"


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"


def _install_stamp(extras: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(extras.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_env(env_dir: Path, extras: str) -> Path:
    """Create (or refresh) a virtual environment with the project installed; return its python."""
    python = _python(env_dir)
    stamp_file = env_dir / ".bot-install-stamp"
    stamp = _install_stamp(extras)
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return python
    if not python.exists():
        print(f"[quickstart] creating virtual environment {env_dir.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print(f"[quickstart] installing {TORCH_PIN} (CPU build) first", flush=True)
    subprocess.run([*pip, TORCH_PIN], check=True)
    print(f"[quickstart] installing the project with extras [{extras}]", flush=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    stamp_file.write_text(stamp)
    return python


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    job = args.pop(0) if args else "run"
    if job in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if job == "bench":
        python = ensure_env(ROOT / ".venv-bench", "dev,bench")
        return subprocess.call([str(python), str(ROOT / "bench" / "replay.py"), *args], cwd=ROOT)
    python = ensure_env(ROOT / ".venv", "dev")
    if job == "run":
        command = [str(python), "-m", "bot", "--config", "config.toml", "demo", *args]
    elif job == "test":
        command = [str(python), "-m", "pytest", *args]
    elif job == "bot":
        command = [str(python), "-m", "bot", *args]
    else:
        print(f"unknown job {job!r}; choose one of: run, test, bench, bot", file=sys.stderr)
        return 2
    return subprocess.call(command, cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
