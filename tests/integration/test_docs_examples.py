"""Every ```console example of the docs, run against the demo service: a page whose examples drift
from what the commands print fails, with a diff naming the page and line.

One case per page (README.md, docs/**/*.md), one fresh service per page with the demo network
loaded as `omnistock serve --demo` loads it; a page's blocks run in order, so state carries over
as a reader types them. The rules (commands, `[exit N]`, `...`, `^C`, masks, the no-check
marker) are in tests/transcripts.py.

`omnistock` commands run in this process (the CLI's `main` in a thread, stdout and stderr
captured together): a subprocess costs about half a second of start-up per command, this about
a tenth of it. `omnistock watch`, which only Ctrl-C ends, runs as a subprocess and gets SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from omnistock.cli.app import build_parser, main
from omnistock.cli.common import TARGET_ENV
from omnistock.cli.serve import load_demo_if_empty, serve_network_file
from tests.transcripts import (
    Block,
    Step,
    agrees,
    commands,
    console_blocks,
    continues,
    diff,
    omnistock_args,
    pages,
    python_blocks,
    split_interrupt,
    steps,
    trim,
)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    page
    for page in pages(ROOT)
    if any(block.file is None for block in console_blocks(str(page), page.read_text(encoding="utf-8")))
]


def page_name(page: Path) -> str:
    return str(page.relative_to(ROOT))


NOT_HERE = {"serve", "gateway", "bench", "loadtest"}
"""Commands that start a service or run a load for minutes: their blocks are marked no-check."""
WATCH_WAIT = 10.0
"""Seconds `watch` gets to print the lines shown before it is interrupted."""
WATCH_EXTRA = 0.5
"""Seconds to wait for lines beyond those shown before interrupting (so extra lines show)."""

_cli_lock = threading.Lock()


def run_cli(args: Sequence[str]) -> tuple[str, int]:
    """`omnistock ARGS` in this process: what it printed (stdout and stderr, in order) and its
    exit status. Called in a worker thread (the CLI runs its own event loop)."""
    buffer = io.StringIO()
    with _cli_lock, contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code: Any = main(list(args))
        except SystemExit as done:  # argparse's usage errors and --help
            code = done.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        buffer.write(f"{code}\n")
        code = 1
    return buffer.getvalue(), code


def omnistock_command() -> list[str]:
    script = Path(sys.executable).with_name("omnistock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "omnistock.cli"]


async def run_watch(args: Sequence[str], shown: int, target: str) -> tuple[list[str], list[str], int]:
    """`omnistock watch ARGS` until it printed `shown` lines (or WATCH_WAIT passed), then Ctrl-C:
    the lines before the interrupt, those after it, and the exit status."""
    process = await asyncio.create_subprocess_exec(
        *omnistock_command(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, TARGET_ENV: target, "NO_COLOR": "1"},
    )
    assert process.stdout is not None
    before: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WATCH_WAIT
    while True:
        try:
            line = await asyncio.wait_for(process.stdout.readline(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            break
        if not line:
            break
        before.append(line.decode().rstrip("\n"))
        if len(before) >= shown:
            # Lines beyond those shown come now or not at all: a watch waits for changes.
            deadline = min(deadline, loop.time() + WATCH_EXTRA)
    if process.returncode is None:
        process.send_signal(signal.SIGINT)  # the reader's Ctrl-C
    rest, _ = await asyncio.wait_for(process.communicate(), 30)
    return before, rest.decode().splitlines(), await process.wait()


class PageRun:
    """Runs one page's blocks against its service, collecting every disagreement."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.target = target
        self.workdir = workdir
        self.failures: list[str] = []

    def fail(self, step: Step, text: str) -> None:
        self.failures.append(f"{step.page}:{step.line}: $ {step.command}\n{text}")

    async def block(self, block: Block) -> None:
        if block.file is not None:
            (self.workdir / block.file).write_text("".join(f"{line}\n" for line in block.lines))
            return
        try:
            block_steps = steps(block)
        except ValueError as error:
            self.failures.append(str(error))
            return
        for step in block_steps:
            await self.step(step)

    async def step(self, step: Step) -> None:
        argvs = commands(step.command)
        output: list[str] = []
        after: list[str] | None = None
        code = 0
        expected, expected_after = split_interrupt(step.output)
        for argv in argvs:
            args = omnistock_args(argv)
            if argv[0] == "cat" and len(argv) == 2 and len(argvs) == 1:
                # The page shows the file: the shown output is its content.
                (self.workdir / argv[1]).write_text("".join(f"{line}\n" for line in step.output))
                return
            if argv[0] == "sleep" and len(argv) == 2:
                await asyncio.sleep(float(argv[1]))
                continue
            if args is None or not args or args[0] in NOT_HERE:
                what = "starts a service or a long run" if args else "is not a command the test runs"
                self.fail(step, f"`{' '.join(argv)}` {what}: mark its block <!-- no-check: why -->")
                return
            if args[0] == "watch":
                printed, after, code = await run_watch(args, len(trim(expected)), self.target)
                output += printed
            else:
                text, code = await asyncio.to_thread(run_cli, args)
                output += text.splitlines()
        output = trim(output)
        problems = []
        if code != step.exit_code:
            problems.append(
                f"exit status {code}, the page says {step.exit_code} (`[exit N]` after the output)"
            )
        if not agrees(trim(expected), output):
            problems.append("output differs (-page +actual, after masking):\n" + diff(trim(expected), output))
        if expected_after is not None and not agrees(trim(expected_after), trim(after or [])):
            problems.append(
                "output after Ctrl-C differs (-page +actual):\n"
                + diff(trim(expected_after), trim(after or []))
            )
        if problems:
            self.fail(step, "\n".join(problems))


def earlier_pages(page: Path) -> list[Path]:
    """The pages this one goes on from (`<!-- continues: PAGE -->`), the first first."""
    chain: list[Path] = []
    name = continues(page.read_text())
    while name is not None:
        page = (page.parent / name).resolve()
        assert page.is_file() and page not in chain, f"<!-- continues: {name} -->: no such page, or a loop"
        chain.insert(0, page)
        name = continues(page.read_text())
    return chain


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, as the pages show it (a date alone is local midnight)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def serve_demo_args() -> argparse.Namespace:
    """`omnistock serve --demo` as the CLI parses it: its shards, partitions and network file."""
    return build_parser().parse_args(["serve", "--demo"])


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[page_name(page) for page in PAGES])
async def test_console_examples(
    page: Path, make_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, utc: None
) -> None:
    blocks = console_blocks(page_name(page), page.read_text())
    if all(block.skip is not None for block in blocks if block.file is None):
        pytest.skip("every console block of the page is marked no-check")
    before = [
        block
        for earlier in earlier_pages(page)
        for block in console_blocks(page_name(earlier), earlier.read_text())
    ]
    args = serve_demo_args()
    service = await make_service(shards=args.shards, partitions=args.partitions)
    target = f"127.0.0.1:{service.port}"
    said: list[str] = []
    await load_demo_if_empty(target, said.append, serve_network_file(args))
    assert any("ready" in line for line in said), said
    monkeypatch.setenv(TARGET_ENV, target)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    run = PageRun(target, tmp_path)
    for block in [*before, *blocks]:
        if block.skip is None:
            await run.block(block)
    if run.failures:
        pytest.fail(
            f"{len(run.failures)} console example(s) of {page_name(page)} disagree with the demo service"
            " (rules: tests/transcripts.py)\n\n" + "\n\n".join(run.failures),
            pytrace=False,
        )


CLIENT_GUIDE = ROOT / "docs" / "python-client.md"
DOCUMENTED_TARGET = "127.0.0.1:50051"


@pytest.mark.slow
async def test_the_python_client_guide_runs_against_the_demo_service(
    make_service: Any, tmp_path: Path
) -> None:
    """Each Python example of the client guide, run as a script against a fresh demo service
    (its output is not shown on the page, so what is checked is that it runs through)."""
    args = serve_demo_args()
    service = await make_service(shards=args.shards, partitions=args.partitions)
    target = f"127.0.0.1:{service.port}"
    await load_demo_if_empty(target, lambda _: None, serve_network_file(args))
    examples = python_blocks(CLIENT_GUIDE.read_text(encoding="utf-8"))
    assert examples and all(DOCUMENTED_TARGET in code for code in examples)
    for index, code in enumerate(examples):
        script = tmp_path / f"example_{index}.py"
        script.write_text(code.replace(DOCUMENTED_TARGET, target), encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, f"python-client.md example {index + 1} failed:\n{output.decode()}"
