"""Every shell and Python example in docs/ and README.md runs, or says why it does not.

Runnable examples run as a user would paste them: shell blocks with ``bash -e`` and ``recog``
on PATH, Python blocks with this interpreter, each in a fresh folder holding the files its
``<!-- run: ... -->`` comment asks for (tests/docs/fixtures.py). HOME (one per example) and RECOG_CACHE
(shared) point into the test's temporary folders, so nothing is written outside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.docs.examples import EXECUTABLE, PYTHON, SHELL, Block, all_blocks, parse_recog_command, recog_command_lines
from tests.docs.fixtures import FIXTURES, SUITE_FIXTURES, Missing, build

BLOCKS = all_blocks()
# A block repeated word for word with the same fixtures (the README's tour is Getting started's) runs once.
_UNIQUE: dict[tuple, list[Block]] = {}
for _b in BLOCKS:
    if _b.verb == "run" and _b.executable:
        _UNIQUE.setdefault((_b.lang, _b.code, tuple(sorted(_b.fixtures.items()))), []).append(_b)
RUNNABLE = [same[0] for same in _UNIQUE.values()]
RUNNABLE_IDS = ["+".join(b.id for b in same) for same in _UNIQUE.values()]
TIMEOUT_S = 180
WORKERS = max(1, min(4, os.cpu_count() or 1))


def test_every_example_runs_or_says_why_not():
    problems = []
    for b in BLOCKS:
        if not b.lang:
            problems.append(f"{b.id}: a block with no language (```bash, ```python, or ```text for output)")
        elif b.executable and not b.verb:
            problems.append(f"{b.id}: a {b.lang} example with no <!-- run: ... --> or <!-- not run: REASON --> "
                            "comment above it")
        elif b.verb == "not run" and len(b.arg.strip()) < 8:
            problems.append(f"{b.id}: 'not run' needs a reason")
        elif b.verb and not b.executable:
            problems.append(f"{b.id}: a {b.verb!r} comment on a {b.lang} block, which is never run")
        for name in b.fixtures.values():
            if name not in FIXTURES:
                problems.append(f"{b.id}: unknown fixture {name!r} (known: {', '.join(sorted(FIXTURES))})")
    assert not problems, "\n".join(problems)
    assert RUNNABLE, "no runnable example found"


def test_every_recog_command_in_the_docs_parses():
    """Run or not, every `recog ...` line names real commands and options, with every required argument."""
    problems, seen = [], 0
    for b in BLOCKS:
        if b.lang not in SHELL:
            continue
        for args in recog_command_lines(b.code):
            seen += 1
            try:
                parse_recog_command(args)
            except Exception as exc:  # click's UsageError family, raised by the real parser
                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                problems.append(f"{b.id}: recog {' '.join(args)}: {message}")
    assert not problems, "\n".join(problems)
    assert seen > 20


def test_every_python_example_compiles():
    problems = []
    for b in BLOCKS:
        if b.lang in PYTHON:
            try:
                compile(b.code, b.id, "exec")
            except SyntaxError as exc:
                problems.append(f"{b.id}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def example_env(request, tmp_path_factory) -> tuple[dict[str, str], Path]:
    """The environment every example runs in, and the cache that fixture builders share."""
    root = tmp_path_factory.mktemp("docs-env")
    (root / "fixture-cache").mkdir()
    for name, suite_fixture in SUITE_FIXTURES.items():
        (root / "fixture-cache" / name).symlink_to(request.getfixturevalue(suite_fixture), target_is_directory=True)
    env = dict(os.environ)
    env.update(RECOG_CACHE=str(root / "recog-cache"), HF_HUB_OFFLINE="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), NO_COLOR="1", COLUMNS="120")
    return env, root / "fixture-cache"


def _run(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    if block.lang in PYTHON:
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    assert block.lang in EXECUTABLE
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def example_runs(request, example_env, tmp_path_factory):
    """The selected examples, WORKERS at a time, each in its own folder: ``{block.id: Future | Missing}``.

    An example is one single-threaded process that spends most of its time importing torch (and
    transformers for the tiny bundle), so running them side by side takes the wall time of the
    section down by about the number of cores. Fixtures are built here, one after another (they share a cache).
    """
    env, cache = example_env
    runs: dict[str, Any] = {}
    selected = {item.callspec.params["block"].id for item in request.session.items
                if getattr(item, "originalname", None) == "test_example_runs"}
    with ThreadPoolExecutor(WORKERS) as pool:
        for block in (b for b in RUNNABLE if b.id in selected):
            cwd = tmp_path_factory.mktemp("example")
            try:
                build(block.fixtures, cwd, cache)
            except Missing as exc:
                runs[block.id] = exc
                continue
            home = tmp_path_factory.mktemp("home")  # named indexes and face collections: one home each
            runs[block.id] = pool.submit(_run, block, cwd, {**env, "HOME": str(home)})
        yield runs
        for future in runs.values():
            if isinstance(future, Future):
                future.cancel()


@pytest.mark.parametrize("block", RUNNABLE, ids=RUNNABLE_IDS)
def test_example_runs(block: Block, example_runs):
    run = example_runs[block.id]
    if isinstance(run, Missing):
        pytest.skip(str(run))
    done = run.result()
    assert done.returncode == 0, (f"{block.id} exited {done.returncode}\n--- code\n{block.code}"
                                  f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
