"""Shared fixtures: a private namespace per test, the `sect` binary, and
a way to start another Python process running a snippet."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def ns(tmp_path):
    """A private namespace directory: nothing of the test touches /dev/shm."""
    d = tmp_path / "ns"
    d.mkdir()
    return str(d)


@pytest.fixture(scope="session")
def sect():
    """The `sect` binary: $SECT, else the workspace's release or debug
    build. Under CI it must exist (the interop tests must not skip)."""
    candidates = [os.environ.get("SECT")] if os.environ.get("SECT") else []
    candidates += [REPO / "target" / "release" / "sect", REPO / "target" / "debug" / "sect"]
    for c in candidates:
        if c and pathlib.Path(c).is_file():
            return str(c)
    if os.environ.get("CI"):
        pytest.fail("no sect binary: build it with cargo build --release --bin sect")
    pytest.skip("no sect binary (cargo build --release --bin sect)")


def spawn(code, *args, **kwargs):
    """Starts `python -c code args...` with pipes; the snippet is dedented."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_line(proc, expected):
    """Reads the child's next line and checks it (a child that died
    instead shows its stderr)."""
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"child said {line!r}, not {expected!r}; stderr:\n{err}")
    return line


@pytest.fixture
def py():
    """`spawn` and `wait_line` for tests; kills what is left at the end."""
    started = []

    class Py:
        @staticmethod
        def spawn(code, *args, **kwargs):
            p = spawn(code, *args, **kwargs)
            started.append(p)
            return p

        wait_line = staticmethod(wait_line)

    yield Py
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
