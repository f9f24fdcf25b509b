"""`omnistock bench --rates` and `--only`: what a person types, refused clearly when malformed."""

from __future__ import annotations

import argparse

import pytest

from omnistock.loadtest.bench import add_arguments


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(argv)


def test_rates_are_read_in_the_order_given() -> None:
    assert parse("--rates", "200,400.5,800").rates == [200.0, 400.5, 800.0]
    assert parse().rates == []


@pytest.mark.parametrize("text", ["", "200,", "fast", "0", "-5", "200,1e9"])
def test_a_malformed_rate_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentError, match=r"rate|numbers"):
        parse("--rates", text)


def test_only_refuses_a_typo_and_names_the_choices() -> None:
    assert parse("--only", "reserve_1,hot_sku").only == {"reserve_1", "hot_sku"}
    with pytest.raises(argparse.ArgumentError, match="unknown scenario reserve1; choose from echo, "):
        parse("--only", "reserve_1,reserve1")
