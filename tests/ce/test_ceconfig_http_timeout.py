"""HTTPTimeout is documented as seconds: fractions are accepted, nonsense names the option."""

import pytest

from JenniferDIRAC.Resources.Cloud.ceconfig import DEFAULT_HTTP_TIMEOUT, CloudCEConfig
from JenniferDIRAC.Resources.Cloud.errors import ConfigurationError

from test_ceconfig import DIRAC_EXAMPLE


def parse(**changes):
    return CloudCEConfig.from_ce_parameters("cloudprov.mysite.example", {**DIRAC_EXAMPLE, **changes})


@pytest.mark.parametrize("raw, expected", [("2.5", 2.5), ("60", 60.0), (" 0.5 ", 0.5), ("3600", 3600.0)])
def test_http_timeout_accepts_seconds_with_fractions(raw, expected):
    assert parse(HTTPTimeout=raw).http_timeout == expected


def test_http_timeout_default():
    assert parse().http_timeout == DEFAULT_HTTP_TIMEOUT


@pytest.mark.parametrize("raw, words", [("soon", "not a number of seconds"), ("nan", "between"),
                                        ("0", "between"), ("-1", "between"), ("3601", "between"),
                                        ("inf", "between")])
def test_bad_http_timeout_names_the_option(raw, words):
    with pytest.raises(ConfigurationError) as err:
        parse(HTTPTimeout=raw)
    assert "HTTPTimeout" in str(err.value) and words in str(err.value)
