# omnistock: `make serve` runs the service with a demo network, `make test` runs every test.
# The Pythons that every dependency ships wheels for; the first one found makes .venv.
SUPPORTED_PYTHONS := 3.11 3.12
PYTHON ?= $(firstword $(foreach v,$(SUPPORTED_PYTHONS),$(shell command -v python$(v))) python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: serve test lint typecheck architecture protos protos-check python-check docs clean

python-check:
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; ok = v in "$(SUPPORTED_PYTHONS)".split(); \
	ok or sys.exit("omnistock needs Python $(SUPPORTED_PYTHONS) (" + sys.executable + " is " + v + ").\n" \
	"Install one (Debian/Ubuntu: apt install python3.12-venv; anywhere: uv python install 3.12)," \
	" then: rm -rf $(VENV) && make test PYTHON=python3.12")' \
	|| exit 1

$(STAMP): pyproject.toml | python-check
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,loadtest]'
	rm -f $(VENV)/.installed-* && touch $@

serve: $(STAMP)
	$(BIN)/omnistock serve --demo

test: $(STAMP) lint typecheck architecture protos-check docs
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The import contracts in pyproject.toml: layers one way, a pure domain, no cycles.
architecture: $(STAMP)
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or a missing page.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir var/site

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

# buf lint (protos/buf.yaml), then buf breaking against the last release. protos/RELEASED
# names it on one line, "<tag> [<commit>]": its tag when this clone has it, else the commit
# recorded (a fresh CI clone may lack tags). "unreleased": no baseline yet, the check is
# skipped; any other missing baseline is an error (fetch the tags: git fetch --tags).
protos-check: $(STAMP)
	$(BIN)/buf lint protos
	@set -- $$(head -n 1 protos/RELEASED); name=$${1:?protos/RELEASED is empty}; commit=$${2:-}; \
	if [ "$$name" = unreleased ]; then \
		echo "protos/RELEASED says unreleased: no baseline yet, buf breaking skipped"; exit 0; \
	fi; \
	ref=$$(git rev-parse -q --verify "refs/tags/$$name^{commit}") \
		|| { [ -n "$$commit" ] && ref=$$(git rev-parse -q --verify "$$commit^{commit}"); } \
		|| { echo "buf breaking: no baseline: neither tag $$name nor commit $${commit:-(none)}" \
			"(protos/RELEASED) is in this clone; git fetch --tags" >&2; exit 1; }; \
	echo "$(BIN)/buf breaking protos --against '.git#ref=$$ref,subdir=protos'   # $$name"; \
	$(BIN)/buf breaking protos --against ".git#ref=$$ref,subdir=protos"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
