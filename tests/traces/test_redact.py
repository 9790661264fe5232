import pytest

from trace2eval.traces.redact import _PATTERNS, contains_secret, redact, redact_text

SECRETS = [
    "dapi" + "0123456789abcdef" * 2,  # fakes, split so secret scanners stay quiet
    "sk-ant-" + "api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "ASIAIOSFODNN7EXAMPLE",
    "xoxb-1234567890-abcdefghij",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    "BEARER abcdefghijklmnopqrstuvwxyz123456",
    "SECRET_ACCESS_KEY: " + "b" * 40,
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_is_redacted(secret):
    text = f"my key is {secret} ok"
    out = redact_text(text)
    assert secret not in out and "[REDACTED:" in out and out.startswith("my key is")
    assert contains_secret(text) and not contains_secret(out)


def test_every_pattern_has_a_sample_the_fast_check_lets_through():
    # contains_secret rules text out with substring tests first; a pattern they miss would leak.
    labels = {label for secret in SECRETS for label, _ in _PATTERNS if f"[REDACTED:{label}]" in redact_text(secret)}
    assert labels == {label for label, _ in _PATTERNS}


def test_bearer_and_aws_secret_keep_their_label():
    out = redact_text("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456 and aws_secret_access_key=" + "A" * 40)
    assert "Bearer [REDACTED:bearer-token]" in out
    assert "aws_secret_access_key=[REDACTED:aws-secret-key]" in out


def test_redact_walks_structures_and_keeps_other_values():
    value = {"messages": [{"content": "token " + SECRETS[0]}], "n": 3, "ok": True}
    out = redact(value)
    assert out["n"] == 3 and out["ok"] is True
    assert "dapi" not in out["messages"][0]["content"]


def test_ordinary_text_is_untouched():
    text = "Order sk-12 shipped; skip-ant-hill; the key to success is dapi-style naming"
    assert redact_text(text) == text


def test_digest_redacts_a_token_split_by_a_newline(store):
    from trace2eval.traces.digest import digest_trace

    tid = store.add("Authorization: Bearer\nabcdefghijklmnopqrstuvwxyz0123456789", "ok")
    digest = digest_trace(store.trace(tid))
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in str(digest)
