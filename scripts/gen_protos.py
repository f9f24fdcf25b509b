"""Regenerate the Python modules of protos/ into protos/gen/ (never edit them by hand).

Usage: python scripts/gen_protos.py [--out DIR]

protoc writes imports as `from omnistock.v1 import x_pb2`; they are rewritten to
`from omnistock.protos.gen.omnistock.v1 import x_pb2` so the generated code lives in its
own package without touching sys.path.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "protos"
IMPORT = re.compile(r"^(from|import) omnistock\.", re.MULTILINE)


def generate(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    protos = sorted(str(p.relative_to(SOURCES)) for p in SOURCES.glob("omnistock/**/*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{SOURCES}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in sorted(out.rglob("*.py*")):
        text = IMPORT.sub(r"\1 omnistock.protos.gen.omnistock.", path.read_text())
        path.write_text(text)
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SOURCES / "gen")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
