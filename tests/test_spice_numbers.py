"""spu_circuits.spice.numbers: SPICE numbers with scale suffixes and unit letters."""

from __future__ import annotations

import pytest

from spu_circuits.errors import InputError
from spu_circuits.parser import (
    parse_number,
)


@pytest.mark.parametrize("token,value", [
    ("1k", 1e3), ("1.5meg", 1.5e6), ("1.5MEG", 1.5e6), ("10u", 1e-5), ("10uF", 1e-5),
    ("2.2e-9", 2.2e-9), ("1mil", 25.4e-6), ("1kohm", 1e3), ("1e3k", 1e6), ("-4.7n", -4.7e-9),
    ("+.5p", 0.5e-12), ("3t", 3e12), ("7g", 7e9), ("1f", 1e-15), ("5m", 5e-3), ("1a", 1.0),
    ("1000000.0", 1e6), ("-2.4124764452810598e-05", -2.4124764452810598e-05), ("2.", 2.0),
])
def test_parse_number(token, value):
    assert parse_number(token) == value


@pytest.mark.parametrize("token", ["abc", "1.2.3", "1e999", "k1", "", "1e-", "--1", "inf"])
def test_parse_number_rejects(token):
    with pytest.raises(InputError):
        parse_number(token)
