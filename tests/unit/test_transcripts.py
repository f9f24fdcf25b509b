"""The rules of the docs' console transcripts (tests/transcripts.py): blocks, commands, masks, `...`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transcripts import (
    agrees,
    align,
    commands,
    console_blocks,
    continues,
    diff,
    mask,
    omnistock_args,
    pages,
    split_interrupt,
    steps,
    trim,
)

PAGE = """\
# A page

```console
$ omnistock availability SKU-00001
SKU        AVAILABLE
SKU-00001       8093

$ .venv/bin/omnistock confirm order-1  # it was released
error: FAILED_PRECONDITION: cannot confirm reservation 'order-1': it is RELEASED
[exit 1]
```

Some prose.

<!-- no-check: starts its own service -->
```console
$ omnistock serve --demo
```

```sh
omnistock serve
```

```python
print("```console")
```

   ```console
   $ omnistock nodes list
   NODE_ID
   ```
"""


def test_console_blocks_are_found_with_their_lines_and_markers() -> None:
    blocks = console_blocks("page.md", PAGE)
    assert [(block.line, block.skip) for block in blocks] == [
        (3, None),
        (16, "starts its own service"),
        (28, None),
    ]
    assert blocks[2].lines == ["$ omnistock nodes list", "NODE_ID"]


def test_a_marker_applies_only_to_the_next_block() -> None:
    text = "<!-- no-check: why -->\n\nprose\n\n```console\n$ omnistock check\n```\n"
    assert console_blocks("p.md", text)[0].skip is None
    text = "<!-- no-check -->\n\n```console\n$ omnistock check\n```\n"
    assert console_blocks("p.md", text)[0].skip == "no reason given"


def test_steps_split_commands_outputs_and_exit_markers() -> None:
    block = console_blocks("page.md", PAGE)[0]
    first, second = steps(block)
    assert (first.line, first.command, first.exit_code) == (4, "omnistock availability SKU-00001", 0)
    assert first.output == ["SKU        AVAILABLE", "SKU-00001       8093"]
    assert (second.line, second.exit_code) == (8, 1)
    assert second.output == [
        "error: FAILED_PRECONDITION: cannot confirm reservation 'order-1': it is RELEASED"
    ]


def test_a_command_goes_on_after_a_backslash() -> None:
    text = (
        '```console\n$ omnistock channels put web --name "Web shop" \\\n'
        "    --low-stock 10\nchannel web\n```\n"
    )
    (step,) = steps(console_blocks("p.md", text)[0])
    assert step.command == 'omnistock channels put web --name "Web shop" --low-stock 10'
    assert step.output == ["channel web"]
    assert commands(step.command) == [
        ["omnistock", "channels", "put", "web", "--name", "Web shop", "--low-stock", "10"]
    ]


def test_output_before_any_command_is_refused() -> None:
    with pytest.raises(ValueError, match=r"p\.md:2: output before any"):
        steps(console_blocks("p.md", "```console\nversion 11\n```\n")[0])


def test_commands_split_at_semicolons_and_drop_comments() -> None:
    assert commands("sleep 7; .venv/bin/omnistock get cart-77  # expired by now") == [
        ["sleep", "7"],
        [".venv/bin/omnistock", "get", "cart-77"],
    ]
    assert commands("omnistock groups put 'a # b' --nodes x#y") == [
        ["omnistock", "groups", "put", "a # b", "--nodes", "x#y"]
    ]
    assert omnistock_args([".venv/bin/omnistock", "check"]) == ["check"]
    assert omnistock_args(["omnistock", "check"]) == ["check"]
    assert omnistock_args(["make", "serve"]) is None


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("created      2025-06-11T10:00:01+02:00", "created      <time>"),
        ("expires      2026-11-22T00:13:32+00:00 (in 14m59s)", "expires      <time> (in <duration>)"),
        ('{"as_of":"2026-11-21T22:18:30.909275648Z"}', '{"as_of":"<time>"}'),
        (
            "as of 2026-11-21T22:04:32+00:00, view version 1795300191006",
            "as of <time>, view version <number>",
        ),
        (
            "3 supply lines applied: 2 supply id(s), 362 units expected (0.0s)",
            "3 supply lines applied: 2 supply id(s), 362 units expected (<duration>)",
        ),
        ("demo: ready in 1.6s", "demo: ready in <duration>"),
        ("reservation  res-0123456789abcdef", "reservation  res-<id>"),
        ("  gRPC      127.0.0.1:50051 (listening)", "  gRPC      127.0.0.1:<port> (listening)"),
        ("  stop      Ctrl-C, or kill -TERM 4242", "  stop      Ctrl-C, or kill -TERM <pid>"),
        ("  data dir  /home/me/omnistock/var", "  data dir  <var>"),
        ("in /home/me/omnistock/var/redis)", "in <var>)"),
        ("at 12:30:01 trailing   ", "at <time> trailing"),
        # What a page means stays: dates, network versions, quantities, distances.
        ("expected at DC-01 on 2026-12-01", "expected at DC-01 on 2026-12-01"),
        ("on 2027-12-01T00:00:00+00:00", "on 2027-12-01T00:00:00+00:00"),
        ('"earliest_date":"2027-12-15T00:00:00Z"', '"earliest_date":"2027-12-15T00:00:00Z"'),
        ("2027-12-15T00:00:00+01:00 2027-12-15T00:00:01+00:00", "<time> <time>"),
        ("2027-12-15T00:00:00.5Z", "<time>"),
        ("network version 3", "network version 3"),
        ("  SKU-00001       8093     8093", "  SKU-00001       8093     8093"),
        ("fills the whole order; 24.2 km; priority 2", "fills the whole order; 24.2 km; priority 2"),
        ("  IN_STOCK 500  (--full lists every SKU)", "  IN_STOCK 500  (--full lists every SKU)"),
    ],
)
def test_masks(line: str, masked: str) -> None:
    assert mask(line) == masked


def test_masked_values_agree_and_the_rest_must_match() -> None:
    page = ["state        HELD", "expires      2025-06-11T10:15:01+02:00 (in 15m00s)"]
    assert agrees(page, ["state        HELD", "expires      2026-12-07T16:50:00+00:00 (in 14m59s)"])
    assert not agrees(page, ["state        CONFIRMED", "expires      2026-12-07T16:50:00+00:00 (in 14m59s)"])


def test_an_ellipsis_stands_for_any_number_of_lines() -> None:
    page = ["NODE", "  DC-01", "  ...", "  STORE-049", "footer"]
    assert agrees(page, ["NODE", "  DC-01", "  STORE-049", "footer"])
    assert agrees(page, ["NODE", "  DC-01", "  DC-02", "  DC-03", "  STORE-049", "footer"])
    assert not agrees(page, ["NODE", "  DC-01", "  DC-02", "footer"])
    assert agrees(["state HELD", "..."], ["state HELD", "a", "b"])
    assert agrees(["..."], [])
    # `... and 33 more` is text, not an ellipsis
    assert not agrees(["... and 33 more"], ["x"])


def test_the_diff_shows_what_the_ellipsis_took_as_context() -> None:
    ops = align(["a", "...", "d", "e"], ["a", "b", "c", "d", "f"])
    assert ops == [(" ", "a"), (" ", "b"), (" ", "c"), (" ", "d"), ("-", "e"), ("+", "f")]
    assert diff(["x"], ["y"]) == "-x\n+y"
    assert diff(["version 1795300191006"], ["version 1796661326429"]) == " version 1796661326429"


def test_a_missing_line_and_an_extra_one() -> None:
    ops = align(
        ["state HELD", "created 2025-06-11T10:00:01+02:00"],
        ["state HELD", "channel web", "created 2026-12-07T16:00:00+00:00"],
    )
    assert ops == [(" ", "state HELD"), ("+", "channel web"), (" ", "created 2026-12-07T16:00:00+00:00")]


def test_interrupt_and_trim() -> None:
    assert split_interrupt(["a", "^C", "stopped"]) == (["a"], ["stopped"])
    assert split_interrupt(["a"]) == (["a"], None)
    assert trim(["a  ", "", " "]) == ["a"]


def test_pages_are_readme_then_docs(tmp_path: Path) -> None:
    (tmp_path / "docs" / "guides").mkdir(parents=True)
    for name in ("README.md", "docs/b.md", "docs/guides/a.md", "docs/x.png"):
        (tmp_path / name).write_text("")
    assert [str(page.relative_to(tmp_path)) for page in pages(tmp_path)] == [
        "README.md",
        "docs/b.md",
        "docs/guides/a.md",
    ]


def test_a_block_marked_as_a_file_is_given_with_its_name() -> None:
    text = "<!-- file: b2b.toml -->\n```toml\n[groups.partners]\n```\n\n```toml\nnot = 'a file'\n```\n"
    (block,) = console_blocks("p.md", text)
    assert (block.file, block.lines, block.skip) == ("b2b.toml", ["[groups.partners]"], None)


def test_a_page_may_go_on_from_another() -> None:
    assert continues("# Live feed\n\n<!-- continues: future-supply.md -->\nText.\n") == "future-supply.md"
    assert continues("# Live feed\n\nSee <!-- continues: x.md --> inline.\n") is None
    assert continues("# Page\n") is None
