"""The documentation site: it builds with --strict, the README stays short and links every page
of the nav, and the generated references cover every RPC and every command."""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from omnistock.cli.app import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 300


def reference_module() -> ModuleType:
    """scripts/docs_reference.py, which mkdocs.yml names as its hooks (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}{build.stderr}"
    assert "WARNING" not in build.stderr, build.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """The text of a built page, tags and entities resolved."""
    built = site / page.removesuffix(".md") / "index.html" if page != "index.md" else site / "index.html"
    return html.unescape(re.sub(r"<[^>]+>", " ", built.read_text()))


def nav_pages() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(items: Any) -> list[str]:
        found: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += walk(value) if isinstance(value, list) else [value]
        return found

    return walk(config["nav"])


def readme_links() -> set[str]:
    return {target.split("#", 1)[0] for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text())}


def test_the_site_builds_strict(site: Path) -> None:
    for page in nav_pages():
        assert page_text(site, page).strip(), page


def test_the_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs on the site (docs/)"


def test_the_readme_links_every_page_of_the_nav() -> None:
    generated = {page.path: page.source for page in reference_module().GENERATED}
    links = readme_links()
    missing = []
    for page in nav_pages():
        # A generated page exists only in the site: the README links the file it is made from.
        wanted = generated.get(page, f"docs/{page}")
        if wanted not in links:
            missing.append(f"{page} (link {wanted})")
    assert not missing, f"README.md does not link: {', '.join(missing)}"
    for target in links:
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"


def rpcs_of_protos() -> dict[str, list[str]]:
    """Every service of protos/omnistock/v1/*.proto and its RPCs, read from the .proto text."""
    services: dict[str, list[str]] = {}
    for proto in sorted((ROOT / "protos" / "omnistock" / "v1").glob("*.proto")):
        text = re.sub(r"//[^\n]*", "", proto.read_text())
        for name, body in re.findall(r"\bservice\s+(\w+)\s*\{(.*?)\n\}", text, re.DOTALL):
            services[name] = re.findall(r"\brpc\s+(\w+)\s*\(", body)
    return services


def test_the_api_reference_names_every_rpc_of_every_service(site: Path) -> None:
    services = rpcs_of_protos()
    assert services and all(services.values())
    page = page_text(site, "api.md")
    for service, rpcs in services.items():
        assert service in page, service
        for rpc in rpcs:
            assert re.search(rf"\b{rpc}\b", page), f"{service}.{rpc} is not in the gRPC API reference"


def command_names(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("omnistock",)) -> list[str]:
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names.append(" ".join((*words, name)))
                names += command_names(sub, (*words, name))
    return names


def test_the_cli_reference_names_every_subcommand(site: Path) -> None:
    names = command_names(build_parser())
    assert "omnistock reserve" in names and "omnistock stock set" in names
    page = page_text(site, "cli.md")
    built = (site / "cli" / "index.html").read_text()
    for name in names:
        assert name in page, f"`{name}` is not in the command-line reference"
        assert f'id="{name.replace(" ", "-")}"' in built, f"`{name}` has no section of its own"
