"""Console transcripts of the docs: what a page's ```console blocks say, and whether a run agrees.

Pure (no service, no subprocess): tests/integration/test_docs_examples.py runs the commands, and
tests/unit/test_transcripts.py checks these rules. The rules, as a page's author sees them:

- Every ```console block of README.md and docs/**/*.md is checked, in page order, against one
  fresh demo service per page (`omnistock serve --demo`'s network); state carries over from
  block to block, as a reader types them.
- A line starting with `$ ` is a command; the lines up to the next command (or the end of the
  block) are its output, stdout and stderr as a terminal shows them. A command line ending in
  ` \\` goes on on the next line. A trailing `# comment` is not part of the command.
- Commands: `omnistock ARGS` (`.venv/bin/omnistock ARGS` alike) runs the CLI against the page's
  service (through $OMNISTOCK_TARGET, so no `--target` is needed); `cat FILE` shows a file the
  page's later commands use: its output is the file's content, which the test writes (so a
  page shows every file its commands read); `sleep SECONDS` waits; `A; B` runs A, then B.
  Anything else needs the block to be marked no-check (below).
- A page may also give a file its commands read as any other fenced block (```toml, ```csv)
  marked `<!-- file: NAME -->` as the last non-blank line before its fence: the test writes
  the block's content to NAME when the page reaches it.
- Exit status: a command must exit 0 unless the last line of its output is `[exit N]`, which
  says it exits N (the line itself is not output).
- `omnistock watch` does not end by itself: it is interrupted as with Ctrl-C once it has
  printed the lines shown before a `^C` line (all of its shown lines when there is no `^C`),
  and half a second more for lines not shown, or after 10 s. The lines after `^C` are what it
  prints once interrupted; without a `^C` line those are not compared.
- A line that is just `...` (indentation aside) stands for any number of lines, none included.
- Volatile values are masked on both sides before comparing (see MASKS): ISO 8601 times (but
  midnight UTC, `2027-12-01T00:00:00+00:00`: the dates a page gives, such as supply dates; the
  commands run with TZ=UTC, so a date alone is UTC midnight) and `HH:MM:SS`, durations such as
  `in 14m59s` or `(0.0s)`, numbers of 12 digits or more (view and feed versions, times in ms),
  generated ids (`res-` and 16 hex digits), ports, pids and paths under var/. Trailing blanks
  of a line, and blank lines ending an output, do not count. (A time of the run that falls on
  midnight UTC to the second is not masked: so rare that a rerun is the fix.)
- A page that goes on from another one (its examples need the state the other's left) says so
  with `<!-- continues: other-page.md -->` (a path relative to the page) on a line of its own:
  the other page's blocks run first, on the same service.
- A block the test cannot run (it starts the service, runs for minutes, or needs something only
  a reader's machine has) is marked by an HTML comment as the last non-blank line before its
  fence, with the reason: `<!-- no-check: starts its own service -->`. Markdown renders the
  comment as nothing and needs no extension. Keep such blocks rare.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CONTINUES = re.compile(r"^<!--\s*continues:\s*(?P<page>\S+)\s*-->$", re.MULTILINE)
FILE = re.compile(r"^<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->$")
NO_CHECK = re.compile(r"^<!--\s*no-check\s*(?::\s*(?P<reason>.*?))?\s*-->$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
EXIT = re.compile(r"^\[exit (?P<code>\d+)\]$")
ELLIPSIS = "..."
INTERRUPT = "^C"

MASKS: list[tuple[re.Pattern[str], str]] = [
    # ISO 8601 times (with fractions and offsets). Dates alone, and midnight UTC, are kept: they are
    # what the page says (`--date 2027-12-01` shows as 2027-12-01T00:00:00+00:00).
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}T(?!00:00:00(\.0+)?(Z|\+00:00)(?![\d:.]))"
            r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<time>"),
    # Durations: `in 14m59s`, `ready in 1.6s`, `(0.0s)`.
    (re.compile(r"\b(\d+h)?(\d+m)?\d+(\.\d+)?s\b"), "<duration>"),
    # View and feed versions (milliseconds since the epoch at a gateway's start, and up), times in ms.
    (re.compile(r"\b\d{12,}(-\d+)?\b"), "<number>"),
    # Ids the CLI makes up: res-, adj-, rcv-, ... and 16 hex digits.
    (re.compile(r"\b([a-z]+)-[0-9a-f]{16}\b"), r"\1-<id>"),
    # Events feed cursors (gateway/usecases/event_feed.py): positions in many streams.
    (re.compile(r"\bc1\.[A-Za-z0-9_-]+"), "c1.<cursor>"),
    # Ports of local addresses, pids, paths under a data dir.
    (re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1?\]):\d+"), r"\1:<port>"),
    (re.compile(r"\b(pid|kill -TERM) \d+"), r"\1 <pid>"),
    (re.compile(r"(?<![\w.])/[^\s)]*/var\b(/[^\s)]*)?"), "<var>"),
    # API key tokens (shown once) and key ids: 12 hex digits with a letter and a digit.
    (re.compile(r"\bosk_[0-9a-f]{12}_[A-Za-z0-9_-]+"), "osk_<token>"),
    (re.compile(r"\b(?=[0-9a-f]{0,11}[a-f])(?=[0-9a-f]{0,11}[0-9])[0-9a-f]{12}\b"), "<key-id>"),
]


def mask(line: str) -> str:
    """The line with its volatile values replaced by placeholders, trailing blanks removed."""
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.rstrip()


@dataclass
class Block:
    """A ```console block (or a file's): where it is, its lines, and why it is not checked (None:
    checked)."""

    page: str
    line: int
    """1-based line number of the opening fence."""
    lines: list[str]
    skip: str | None = None
    file: str | None = None
    """The name of the file the block is (`<!-- file: NAME -->`); None: a console block."""


@dataclass
class Step:
    """One command of a block and the output shown for it."""

    page: str
    command: str
    line: int
    """1-based line number of the command in its page."""
    output: list[str] = field(default_factory=list)
    exit_code: int = 0


def console_blocks(page: str, text: str) -> list[Block]:
    """Every ```console block of a Markdown page, with its no-check marker if it has one, and every
    block marked as a file (`<!-- file: NAME -->`), in page order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines):
            closing = lines[i].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[i])
            i += 1
        i += 1
        words = info.split()
        indent = len(opening["indent"])
        body = [line[indent:] if line[:indent].isspace() else line for line in body]
        file = FILE.match(previous)
        if words and words[0] == "console":
            marker = NO_CHECK.match(previous)
            skip = (marker["reason"] or "no reason given") if marker else None
            blocks.append(Block(page, start + 1, body, skip))
        elif file:
            blocks.append(Block(page, start + 1, body, file=file["name"]))
        previous = ""
    return blocks


def continues(text: str) -> str | None:
    """The page this one goes on from (`<!-- continues: PAGE -->`), as written, or None."""
    found = CONTINUES.search(text)
    return found["page"] if found else None


def steps(block: Block) -> list[Step]:
    """The block's commands, each with its output; ValueError if the block does not start with one."""
    result: list[Step] = []
    i = 0
    lines = block.lines
    while i < len(lines):
        line = lines[i]
        number = block.line + 1 + i
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            result.append(Step(block.page, command.strip(), number))
        elif result:
            result[-1].output.append(line)
        elif line.strip():
            raise ValueError(f"{block.page}:{number}: output before any `$ ` command")
        i += 1
    for step in result:
        while step.output and not step.output[-1].strip():
            step.output.pop()
        exit_line = EXIT.match(step.output[-1].strip()) if step.output else None
        if exit_line:
            step.exit_code = int(exit_line["code"])
            step.output.pop()
            while step.output and not step.output[-1].strip():
                step.output.pop()
    return result


OMNISTOCK = ("omnistock", ".venv/bin/omnistock", "./.venv/bin/omnistock")


def strip_comment(command: str) -> str:
    """The command without a trailing `# comment` (a `#` starting a word outside quotes, as in sh)."""
    quote = ""
    for i, char in enumerate(command):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command


def commands(command: str) -> list[list[str]]:
    """A command line as argument lists, split at `;`, its `# comment` left out."""
    lexer = shlex.shlex(strip_comment(command), posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    lexer.commenters = ""
    result: list[list[str]] = [[]]
    for token in lexer:
        if token == ";":
            result.append([])
        else:
            result[-1].append(token)
    return [argv for argv in result if argv]


def omnistock_args(argv: Sequence[str]) -> list[str] | None:
    """The CLI's arguments if argv runs `omnistock` (or .venv/bin/omnistock), else None."""
    if argv and argv[0] in OMNISTOCK:
        return list(argv[1:])
    return None


def split_interrupt(output: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """The lines before a `^C` line, and those after it (None: no `^C`)."""
    for i, line in enumerate(output):
        if line.strip() == INTERRUPT:
            return list(output[:i]), list(output[i + 1 :])
    return list(output), None


def _is_ellipsis(line: str) -> bool:
    return line.strip() == ELLIPSIS


def align(expected: Sequence[str], actual: Sequence[str]) -> list[tuple[str, str]]:
    """The cheapest way to turn the expected lines into the actual ones, line by line, after masking
    both: (" ", line) where they agree (a line `...` absorbs any run of actual lines, shown as " "),
    ("-", line) for an expected line missing, ("+", line) for an actual line not expected. The
    output agrees with the page iff every operation is " "."""
    want = [mask(line) for line in expected]
    got = [mask(line) for line in actual]
    n, m = len(want), len(got)
    inf = n + m + 1
    # cost[i][j]: cheapest alignment of want[i:] with got[j:]
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    cost[n][m] = 0
    for j in range(m - 1, -1, -1):
        cost[n][j] = cost[n][j + 1] + 1
    for i in range(n - 1, -1, -1):
        for j in range(m, -1, -1):
            if _is_ellipsis(want[i]):
                best = cost[i + 1][j]
                if j < m:
                    best = min(best, cost[i][j + 1])
            else:
                best = cost[i + 1][j] + 1
                if j < m:
                    best = min(best, cost[i][j + 1] + 1)
                    if want[i] == got[j]:
                        best = min(best, cost[i + 1][j + 1])
            cost[i][j] = best
    ops: list[tuple[str, str]] = []
    i = j = 0
    while i < n or j < m:
        if i < n and _is_ellipsis(want[i]):
            # Ties end the ellipsis: the diff then pairs the page's next lines with actual ones.
            if cost[i][j] == cost[i + 1][j]:
                i += 1
            else:
                ops.append((" ", actual[j].rstrip()))
                j += 1
        elif i < n and j < m and want[i] == got[j] and cost[i][j] == cost[i + 1][j + 1]:
            ops.append((" ", actual[j].rstrip()))
            i += 1
            j += 1
        elif i < n and cost[i][j] == cost[i + 1][j] + 1:
            ops.append(("-", expected[i].rstrip()))
            i += 1
        else:
            ops.append(("+", actual[j].rstrip()))
            j += 1
    return ops


def agrees(expected: Sequence[str], actual: Sequence[str]) -> bool:
    return all(op == " " for op, _ in align(expected, actual))


def diff(expected: Sequence[str], actual: Sequence[str]) -> str:
    """A diff of the page's output (-) against the actual one (+), whole (outputs are short)."""
    return "\n".join(f"{op}{line}" for op, line in align(expected, actual))


def trim(lines: Sequence[str]) -> list[str]:
    """The lines without trailing blanks and without blank lines at the end."""
    result = [line.rstrip() for line in lines]
    while result and not result[-1]:
        result.pop()
    return result


def pages(root: Path) -> Iterator[Path]:
    """README.md and every Markdown page under docs/, in a stable order."""
    readme = root / "README.md"
    if readme.exists():
        yield readme
    docs = root / "docs"
    if docs.is_dir():
        yield from sorted(docs.rglob("*.md"))


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a page, in order."""
    return PYTHON_BLOCK.findall(text)
