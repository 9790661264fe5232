import json

import pytest

from secret_corpus import ORDINARY, SECRETS
from trace2eval.traces.redact import _RULES, contains_secret, is_secret_key, mask_uri, redact, redact_text

# Formats whose secret follows a keyword: the keyword's case varies in the wild (PASSWORD=, BEARER).
KEYWORD_LABELS = {
    "password",
    "bearer-token",
    "basic-auth",
    "aws-secret-key",
    "azure-key",
    "url-password",
    "private-key",
}


def _variants(secret):
    """The secret as traces carry it: in a sentence, glued to word characters, inside JSON, recased."""
    yield f"my key is {secret.text} ok"
    yield f"call_{secret.text}_end"
    yield json.dumps({"tool_input": {"note": secret.text}})
    if secret.label not in ("password", "url-password"):  # `xpwd=` is not a password field
        yield "x" + secret.text
    if secret.label in KEYWORD_LABELS:
        for recase in (str.upper, str.lower):
            yield recase(secret.text.replace(secret.core, "\0")).replace("\0", secret.core)


def _leaks(secret, out: str) -> list[str]:
    return [c for c in {secret.core, secret.core.lower()} if c in out]


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: f"{s.label}:{s.text[:14]}")
def test_every_format_is_redacted_wherever_it_appears(secret):
    for text in _variants(secret):
        out = redact_text(text)
        assert not _leaks(secret, out), (text, out)
        assert "[REDACTED:" in out
        assert contains_secret(text) and not contains_secret(out)
    assert f"[REDACTED:{secret.label}]" in redact_text(secret.text)


def test_every_rule_has_a_sample():
    caught = {r.label for s in SECRETS for r in _RULES if f"[REDACTED:{r.label}]" in redact_text(s.text)}
    assert caught == {r.label for r in _RULES}


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_untouched(text):
    assert redact_text(text) == text
    assert not contains_secret(text)


def test_labels_keep_the_text_readable():
    out = redact_text("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456 and aws_secret_access_key=" + "A" * 40)
    assert "Bearer [REDACTED:bearer-token]" in out
    assert "aws_secret_access_key=[REDACTED:aws-secret-key]" in out
    assert redact_text('{"password": "' + "p w" + '"}') == '{"password": "[REDACTED:password]"}'
    assert redact_text("postgresql://app:" + "pw1@db/x") == "postgresql://app:[REDACTED:url-password]@db/x"


def test_a_pem_block_cut_before_its_end_is_redacted_to_the_end():
    pem = next(s for s in SECRETS if s.label == "private-key")
    cut = "key: " + pem.text[: len(pem.text) // 2]
    assert redact_text(cut) == "key: [REDACTED:private-key]"


def test_a_bare_40_character_hash_is_not_an_aws_secret():
    sha1 = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert redact_text(f"aws deploy of commit {sha1}") == f"aws deploy of commit {sha1}"


def test_redact_walks_structures_and_keeps_other_values():
    value = {"messages": [{"content": "token " + SECRETS[0].text}], "n": 3, "ok": True}
    out = redact(value)
    assert out["n"] == 3 and out["ok"] is True
    assert SECRETS[0].core not in json.dumps(out)


def test_values_of_credential_keys_are_redacted_whatever_they_look_like():
    out = redact(
        {
            "user": "bob",
            "password": "hunter2",
            "db_passwd": 1234,
            "client_secret": "x",
            "max_tokens": 512,
            "page_token": "abc",
            "api-key": "k1",
            "Authorization": "opaque",
        }
    )
    assert out == {
        "user": "bob",
        "password": "[REDACTED:password]",
        "db_passwd": "[REDACTED:password]",
        "client_secret": "[REDACTED:password]",
        "max_tokens": 512,
        "page_token": "abc",
        "api-key": "[REDACTED:password]",
        "Authorization": "[REDACTED:password]",
    }
    assert not is_secret_key("n_tool_calls") and not is_secret_key("tokens_in")


def test_digest_redacts_a_token_split_by_a_newline(store):
    from trace2eval.traces.digest import digest_trace

    tid = store.add("Authorization: Bearer\nabcdefghijklmnopqrstuvwxyz0123456789", "ok")
    digest = digest_trace(store.trace(tid))
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in str(digest)


@pytest.mark.parametrize(
    "uri, masked",
    [
        ("postgresql://app:" + "s3cret@db.internal:5432/mlflow", "postgresql://app:***@db.internal:5432/mlflow"),
        ("https://user:" + "pw@mlflow.example.com/", "https://user:***@mlflow.example.com/"),
        ("https://" + "tok123@mlflow.example.com", "https://***@mlflow.example.com"),
        ("https://mlflow.example.com/?token=" + "abc&x=1", "https://mlflow.example.com/?token=***&x=1"),
        ("databricks", "databricks"),
        ("databricks://my-profile", "databricks://my-profile"),
        ("databricks://my-profile:prefix", "databricks://my-profile:prefix"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("", ""),
    ],
)
def test_mask_uri(uri, masked):
    assert mask_uri(uri) == masked
