"""One redaction (:func:`clustermgr.address.redact_url`) for every URL or address
printed: userinfo in every form, repeated, upper-case and percent-encoded
``password`` keys, ``unix://`` URLs, in errors and in CLI output."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from clustermgr.address import InvalidAddressError, address_text, parse_address, redact_url
from clustermgr.cli import main
from clustermgr.cli._common import CliError, node_address

# {} is where the password goes; "q" forms get it percent-encoded, "raw" forms as typed.
QUOTED_FORMS = [
    "redis://user:{}@127.0.0.1:6379/0",
    "rediss://:{}@localhost",
    "redis://{}@127.0.0.1:6379",
    "redis://127.0.0.1:6379/?password={}",
    "redis://127.0.0.1:6379/?PASSWORD={}",
    "redis://127.0.0.1:6379/?Password={}&db=1",
    "redis://127.0.0.1:6379/?pass%77ord={}",
    "redis://127.0.0.1:6379/?PASS%57ORD={}&name=app",
    "redis://127.0.0.1:6379/?password=decoy&password={}",
    "redis://127.0.0.1:6379/?db=2&password={}&password={}&name=x",
    "redis://127.0.0.1:6379/?pass+word={}",
    "unix://:{}@/tmp/redis.sock?db=1",
    "unix://user:{}@/tmp/redis.sock",
    "unix:///tmp/redis.sock?password={}",
    "unix:/tmp/redis.sock?PASSWORD={}",
    "rediss://user:{}@[::1]:6380",
    "redis://user:{}@h:notaport",
    "redis://user:{}@127.0.0.1:6379/?bogus=1",
]
RAW_FORMS = [
    "redis://user:{}@127.0.0.1:6379",
    "rediss://:{}@127.0.0.1:6379/1",
    "unix://:{}@/tmp/redis.sock",
    "redis://user:{}@127.0.0.1:6379/?password={}",
]

passwords = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=6, max_size=24,
)


def _outputs(url: str) -> list[str]:
    """Every text a user could see for ``url``."""
    texts = [redact_url(url), address_text(url)]
    try:
        address = parse_address(url)
    except InvalidAddressError as exc:
        texts.append(str(exc))
    else:
        if address.password is not None:  # "redis://name@host" names a user, shown in repr
            texts.append(repr(address))
    try:
        node_address(url)
    except CliError as exc:
        texts.append(str(exc))
    return texts


def _check(template: str, secret: str, encoded: str) -> None:
    assume(secret not in template.replace("{}", "***"))
    # Not a word every such output holds anyway ("Server" in "ServerAddress(").
    baseline = " ".join(_outputs(template.replace("{}", "Zq9x7Wv3")))
    assume(all(form not in baseline for form in {secret, encoded, quote_plus(secret)}))
    url = template.replace("{}", encoded)
    for text in _outputs(url):
        for form in {secret, encoded, quote_plus(secret)}:
            assert form not in text, f"{form!r} leaked from {url!r} in {text!r}"


@given(template=st.sampled_from(QUOTED_FORMS), secret=passwords)
def test_no_password_appears_in_any_output(template: str, secret: str) -> None:
    _check(template, secret, quote(secret, safe=""))


@given(template=st.sampled_from(RAW_FORMS), secret=passwords)
def test_no_unescaped_password_appears_in_any_output(template: str, secret: str) -> None:
    # Unescaped "@", "/", "?", "#" or "&" in the password make the URL malformed:
    # hide more, never less. Query values end at "&" or "#", as the parser reads them.
    if "?password=" in template:
        assume(not any(c in secret for c in "&#;"))
    _check(template, secret, secret)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://alice:pw1234@h:1/0", "redis://alice:***@h:1/0"),
        ("redis://pw1234@h:1", "redis://***@h:1"),
        ("redis://h:1/?password=a&PASSWORD=b&pass%77ord=c&db=2",
         "redis://h:1/?password=***&PASSWORD=***&pass%77ord=***&db=2"),
        ("unix://:pw1234@/tmp/s.sock", "unix://:***@/tmp/s.sock"),
        ("redis://h:1", "redis://h:1"),
        ("/tmp/plain.sock", "/tmp/plain.sock"),
    ],
)
def test_redaction_keeps_what_is_not_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("command", [["topology"], ["keyslot", "k", "--url"], ["watch"]])
def test_cli_hides_the_password_of_a_unix_url(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Unix-Cli-Pw-51f2"
    code = main([*command, f"unix://app:{secret}@/tmp/clustermgr-none.sock?password={secret}"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "unix://app:***@/tmp/clustermgr-none.sock" in err
    assert secret not in out + err
