"""The generated pages of the documentation site, and the MkDocs hooks that add them.

mkdocs.yml names this file under `hooks:`, so `mkdocs build` (and `make docs`) renders, on
every build and from whatever is in the working tree:

    api.md        the gRPC API, from the comments of protos/omnistock/v1/*.proto (protoc with
                  --include_source_info; comments paired with services, RPCs, messages, fields,
                  enums and values through the descriptors' SourceCodeInfo)
    cli.md        the command line, walked from `omnistock.cli.app.build_parser()`: every
                  command and subcommand, its help, usage, arguments and defaults
    changelog.md  CHANGELOG.md of the repository root

The pages exist only in the build (`File.generated`): nothing is written to docs/. So that
docs/ reads on GitHub too, a page links a generated page through the file it is made from
(`../protos/omnistock/v1`, `../omnistock/cli/app.py#omnistock-serve`, `../CHANGELOG.md`),
and any other file outside docs/ by its path (`../loadtest/peak.py`): in the site such a
link becomes the generated page (anchor kept), the home page for README.md, or the file's
repository path in code.

Print one page to stdout: python scripts/docs_reference.py api|cli|changelog
"""

from __future__ import annotations

import argparse
import posixpath
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
API_PROTOS = "omnistock/v1/*.proto"
USAGE_WIDTH = 100


@dataclass(frozen=True)
class Generated:
    """A page made at build time: where it is in the site, and the file the README links to
    for it (GitHub shows that file; the generated page exists only in the site)."""

    path: str
    title: str
    source: str
    render: Callable[[], str]


# --- gRPC API -----------------------------------------------------------------------------

# Field numbers of descriptor.proto, as SourceCodeInfo paths use them.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE = 2
SERVICE_METHOD = 2

Comments = dict[tuple[int, ...], str]


def descriptor_set(protos: list[str]) -> Any:
    """A FileDescriptorSet of `protos` (paths under protos/) with their comments."""
    import grpc_tools
    from google.protobuf import descriptor_pb2

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "api.pb"
        # protoc in a child process: grpc_tools.protoc keeps state between runs in one process.
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"-I{include}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *protos,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"protoc failed on {', '.join(protos)}:\n{run.stderr}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def comments_of(file: Any) -> Comments:
    """Each element's comment (leading, then trailing), by its SourceCodeInfo path."""
    found: Comments = {}
    for location in file.source_code_info.location:
        text = "\n".join(c for c in (location.leading_comments, location.trailing_comments) if c.strip())
        if text.strip():
            found[tuple(location.path)] = text
    return found


def paragraphs(comment: str) -> list[str]:
    """A comment as paragraphs of one line each (a blank comment line separates them)."""
    result: list[str] = []
    for block in re.split(r"\n\s*\n", comment.strip()):
        words = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if words:
            result.append(escape(words))
    return result


def escape(text: str) -> str:
    """Prose as Markdown shows it: no HTML, and no emphasis from a `*` outside code spans."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    spans = text.split("`")
    return "`".join(span if i % 2 else span.replace("*", "\\*") for i, span in enumerate(spans))


def cell(comment: str) -> str:
    return "<br>".join(paragraphs(comment)).replace("|", "\\|")


def anchor(full_name: str, package: str) -> str:
    return full_name.removeprefix(package + ".").replace(".", "-").lower()


SCALARS = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "fixed64",
    7: "fixed32",
    8: "bool",
    9: "string",
    12: "bytes",
    13: "uint32",
    15: "sfixed32",
    16: "sfixed64",
    17: "sint32",
    18: "sint64",
}
TYPE_MESSAGE, TYPE_ENUM = 11, 14
LABEL_REPEATED = 3


class ApiPage:
    """The gRPC API reference of one package, as Markdown."""

    def __init__(self, files: list[Any]) -> None:
        self.files = files
        self.package = files[0].package if files else ""
        self.known: set[str] = set()
        self.maps: dict[str, Any] = {}
        for file in files:
            for message, name in self.messages(file.message_type, f".{file.package}"):
                self.known.add(name)
                if message.options.map_entry:
                    self.maps[name] = message
                for enum in message.enum_type:
                    self.known.add(f"{name}.{enum.name}")
            for enum in file.enum_type:
                self.known.add(f".{file.package}.{enum.name}")

    @staticmethod
    def messages(messages: Any, scope: str) -> Iterator[tuple[Any, str]]:
        for message in messages:
            name = f"{scope}.{message.name}"
            yield message, name
            yield from ApiPage.messages(message.nested_type, name)

    def type_ref(self, type_name: str) -> str:
        name = type_name.lstrip(".")
        if type_name in self.known:
            return f"[`{name.removeprefix(self.package + '.')}`](#{anchor(name, self.package)})"
        return f"`{name}`"

    def field_type(self, field: Any) -> str:
        if field.type_name in self.maps:
            key, value = self.maps[field.type_name].field
            return f"map&lt;{self.field_type(key)}, {self.field_type(value)}&gt;"
        if field.type in (TYPE_MESSAGE, TYPE_ENUM):
            shown = self.type_ref(field.type_name)
        else:
            shown = f"`{SCALARS.get(field.type, str(field.type))}`"
        return f"repeated {shown}" if field.label == LABEL_REPEATED else shown

    def render(self) -> str:
        out = [
            "# gRPC API",
            "",
            f"Package `{self.package}`. This page is generated at every build from the comments of "
            f"the `.proto` files in `protos/{API_PROTOS.rsplit('/', 1)[0]}` "
            f"({', '.join(f'`{Path(f.name).name}`' for f in self.files)}). "
            "What each call does in practice, with its limits, is in [RPCs and limits](rpcs.md); "
            "refusals are in [Errors](errors.md).",
            "",
            "## Services",
            "",
        ]
        for file in self.files:
            notes = comments_of(file)
            for s, service in enumerate(file.service):
                out += [f"### {service.name} {{ #{anchor(service.name, '')} }}", ""]
                for text in paragraphs(notes.get((FILE_SERVICE, s), "")):
                    out += [text, ""]
                out += ["| RPC | request | response | what it does |", "|---|---|---|---|"]
                for m, method in enumerate(service.method):
                    request = self.type_ref(method.input_type)
                    response = self.type_ref(method.output_type)
                    if method.client_streaming:
                        request = f"stream {request}"
                    if method.server_streaming:
                        response = f"stream {response}"
                    note = cell(notes.get((FILE_SERVICE, s, SERVICE_METHOD, m), ""))
                    out.append(f"| `{method.name}` | {request} | {response} | {note} |")
                out.append("")
        for file in self.files:
            notes = comments_of(file)
            out += [f"## {Path(file.name).name}", ""]
            for i, message in enumerate(file.message_type):
                out += self.message(message, f"{file.package}.{message.name}", (FILE_MESSAGE, i), notes)
            for i, enum in enumerate(file.enum_type):
                out += self.enum(enum, f"{file.package}.{enum.name}", (FILE_ENUM, i), notes)
        return "\n".join(out).rstrip() + "\n"

    def message(self, message: Any, name: str, path: tuple[int, ...], notes: Comments) -> list[str]:
        if message.options.map_entry:
            return []
        short = name.removeprefix(self.package + ".")
        out = [f"### {short} {{ #{anchor(name, self.package)} }}", ""]
        for text in paragraphs(notes.get(path, "")):
            out += [text, ""]
        if message.field:
            out += ["| field | type | # | description |", "|---|---|---:|---|"]
            for f, field in enumerate(message.field):
                kind = self.field_type(field)
                if field.proto3_optional:
                    kind = f"optional {kind}"
                elif field.HasField("oneof_index"):
                    kind += f" (one of `{message.oneof_decl[field.oneof_index].name}`)"
                note = cell(notes.get((*path, MESSAGE_FIELD, f), ""))
                out.append(f"| `{field.name}` | {kind} | {field.number} | {note} |")
            out.append("")
        else:
            out += ["No fields.", ""]
        for i, enum in enumerate(message.enum_type):
            out += self.enum(enum, f"{name}.{enum.name}", (*path, MESSAGE_ENUM, i), notes)
        for i, nested in enumerate(message.nested_type):
            out += self.message(nested, f"{name}.{nested.name}", (*path, MESSAGE_NESTED, i), notes)
        return out

    def enum(self, enum: Any, name: str, path: tuple[int, ...], notes: Comments) -> list[str]:
        short = name.removeprefix(self.package + ".")
        out = [f"### {short} {{ #{anchor(name, self.package)} }}", ""]
        for text in paragraphs(notes.get(path, "")):
            out += [text, ""]
        out += ["| value | number | description |", "|---|---:|---|"]
        for v, value in enumerate(enum.value):
            out.append(f"| `{value.name}` | {value.number} | {cell(notes.get((*path, ENUM_VALUE, v), ''))} |")
        return [*out, ""]


def api_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.glob(API_PROTOS))


def render_api() -> str:
    files = list(descriptor_set(api_protos()).file)
    # Services in the order a reader meets them: stock, availability, reservations, network.
    order = ["inventory", "availability", "reservation", "network"]
    files.sort(key=lambda f: (order.index(Path(f.name).stem) if Path(f.name).stem in order else 99, f.name))
    return ApiPage(files).render()


# --- command line -------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand of `parser`, in the order --help lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield choice.dest, choice.help or "", action.choices[choice.dest]


def walk(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[str, str, Any]]:
    """Every command below `parser` as ("omnistock stock set", help, its parser), depth first."""
    for name, help_text, sub in subcommands(parser):
        yield " ".join(("omnistock", *words, name)), help_text, sub
        yield from walk(sub, (*words, name))


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for name, _, _ in walk(parser)]


def formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)  # type: ignore[call-arg]


def argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    form = formatter(parser)
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        invocation = form._format_action_invocation(action)
        help_text = form._expand_help(action) if action.help else ""
        default = action.default
        shown = (
            ""
            if default in (None, False, argparse.SUPPRESS) or action.nargs == 0
            else f"`{', '.join(map(str, default)) if isinstance(default, list) else default}`"
        )
        required = " (required)" if action.required and action.option_strings else ""
        described = escape(" ".join(help_text.split())).replace("|", "\\|")
        rows.append(f"| `{invocation}`{required} | {shown} | {described} |")
    return rows


def render_cli(parser: argparse.ArgumentParser | None = None) -> str:
    if parser is None:
        from omnistock.cli.app import build_parser

        parser = build_parser()
    commands = list(walk(parser))
    out = [
        "# Command line",
        "",
        "Generated at every build from the argument parser of the `omnistock` command "
        "(`omnistock.cli.app.build_parser()`): every command, its help, its usage, its arguments "
        "and their defaults. `omnistock COMMAND --help` prints the same. Defaults that depend on "
        "the machine (`serve --shards`: one per CPU but one) or on the environment (`--target`: "
        "`$OMNISTOCK_TARGET`) are shown as they were where the site was built. Walk-throughs are "
        "in the guides, starting with [a reservation's life](reservation-life.md), which also has "
        "the options every client command takes, the JSON output and the exit codes.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, help_text, _ in commands:
        out.append(f"| [`{name}`](#{slug(name)}) | {escape(help_text)} |")
    out.append("")
    for name, help_text, sub in commands:
        level = "#" * min(2 + name.count(" ") - 1, 4)
        out += [f"{level} {name} {{ #{slug(name)} }}", ""]
        if help_text:
            out += [escape(help_text[0].upper() + help_text[1:]) + ".", ""]
        if sub.description:
            out += [escape(" ".join(sub.description.split())), ""]
        usage = formatter(sub)
        usage.add_usage(sub.usage, sub._actions, sub._mutually_exclusive_groups)
        out += ["```text", usage.format_help().strip(), "```", ""]
        rows = argument_rows(sub)
        if rows:
            out += ["| argument | default | description |", "|---|---|---|", *rows, ""]
        nested = [n for n, _, _ in subcommands(sub)]
        if nested:
            out += ["Actions: " + ", ".join(f"[`{n}`](#{slug(f'{name} {n}')})" for n in nested) + ".", ""]
    return "\n".join(out).rstrip() + "\n"


def slug(command: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")


# --- changelog ----------------------------------------------------------------------------

LINK = re.compile(r"(?<!\!)\[([^\]]*)\]\(([^)\s]+)\)")


def render_changelog() -> str:
    """CHANGELOG.md, its links made relative to docs/ (where the generated page lives)."""

    def moved(match: re.Match[str]) -> str:
        text, target = match.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):
            return match.group(0)
        target = target.removeprefix("docs/") if target.startswith("docs/") else f"../{target}"
        return f"[{text}]({target})"

    return LINK.sub(moved, (ROOT / "CHANGELOG.md").read_text())


GENERATED = (
    Generated("api.md", "gRPC API", "protos/omnistock/v1", render_api),
    Generated("cli.md", "Command line", "omnistock/cli/app.py", render_cli),
    Generated("changelog.md", "Changelog", "CHANGELOG.md", render_changelog),
)


# --- MkDocs hooks -------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for page in GENERATED:
        files.append(File.generated(config, page.path, content=page.render()))
    return files


def outside_docs(target: str, page_uri: str) -> str | None:
    """The repository path a relative link of a docs page points to, when it leaves docs/."""
    if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), target.split("#", 1)[0]))
    if not path.startswith("../"):
        return None
    repo_path = path.removeprefix("../")
    return repo_path if (ROOT / repo_path).exists() else None


def site_links(markdown: str, page_uri: str) -> str:
    """Links that leave docs/ made to work in the site (see the module's docstring)."""
    depth = "../" * page_uri.count("/")

    def rewrite(match: re.Match[str]) -> str:
        text, target = match.groups()
        repo_path = outside_docs(target, page_uri)
        if repo_path is None:
            return match.group(0)
        fragment = f"#{target.split('#', 1)[1]}" if "#" in target else ""
        for page in GENERATED:
            if repo_path == page.source:
                return f"[{text}]({depth}{page.path}{fragment})"
        if repo_path == "README.md":
            return f"[{text}]({depth}index.md)"
        return text if repo_path in text else f"{text} (`{repo_path}`)"

    return LINK.sub(rewrite, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return site_links(markdown, page.file.src_uri)


def main() -> None:
    pages = {page.path.removesuffix(".md"): page for page in GENERATED}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", choices=sorted(pages))
    sys.stdout.write(pages[parser.parse_args().page].render())


if __name__ == "__main__":
    main()
