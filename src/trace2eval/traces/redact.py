"""Remove credentials from trace text before anything is written to a session folder.

Production traces are untrusted and sometimes carry secrets (a user pastes a token, a tool echoes
a header or a connection string). Every string that leaves the trace store passes through
`redact`, on the original text: before it is cut to a preview and before it is lower-cased, or a
key cut in half or turned into `akia…` is no longer recognized.

Standard library only, and cheap on the common case: almost no text holds a secret, and
`contains_secret` rules most out with substring tests before any pattern runs.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class _Rule:
    label: str
    pattern: re.Pattern[str]
    # Searched in the lower-cased text; every match of `pattern` contains one, so a rule runs only
    # when one is found. Each starts with a literal, which the regex engine finds as fast as `in`.
    gates: tuple[re.Pattern[str], ...]


def _rule(label: str, pattern: str, *gates: str) -> _Rule:
    return _Rule(label, re.compile(pattern), tuple(_gate(g) for g in gates))


_GATE_CACHE: dict[str, re.Pattern[str]] = {}


def _gate(source: str) -> re.Pattern[str]:
    return _GATE_CACHE.setdefault(source, re.compile(source))


# A match keeps its `keep` group (the field name, "Bearer ", the URL up to the password) and its
# `end` group, so the text stays readable: `password=[REDACTED:password]`.
# Prefixes specific enough to be a key on their own match wherever they start, also glued to a
# word (`call_sk-proj-…`); generic ones (`sk-`) must not follow a letter or digit (`task-…`).
_KEYWORDS = (
    r"password|passwd|passphrase|(?<![a-z])pwd|client[_\-]?secret|secret[_\-]?key|api[_\-]?key|x[_\-]api[_\-]key"
    r"|access[_\-]?token|auth[_\-]?token|refresh[_\-]token|id[_\-]token|private[_\-]?key"
)
_ACCESS = r"acc(?:ountkey|ess[_\-]?(?:key|token))"
_RULES: tuple[_Rule, ...] = (
    # PEM blocks of any length; one whose end is missing (cut upstream) is redacted to the end.
    _rule(
        "private-key",
        r"(?i)-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        "private",
    ),
    # scheme://user:password@host (database URIs, proxies, git remotes).
    # Starts at the literal "://" (fast to find); the scheme before it is kept as it is.
    _rule(
        "url-password",
        r"(?P<keep>://[^\s:/?#@\"'<>\\]*:)"
        r"(?!\[(?i:redacted))[^\s/?#@\"'<>\\]{1,300}(?P<end>@)",
        "://",
    ),
    _rule("databricks-token", r"(?i)(?:dapi|dose)[0-9a-f]{32}(?:-\d+)?", "dapi", "dose"),
    _rule("anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{20,}", "sk-"),
    _rule(
        "openai-key",
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"
        r"|sk-(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{32,}"  # legacy keys: long, no dashes
        r"|(?<![A-Za-z0-9])sk-(?=[A-Za-z_\-]*\d)[A-Za-z0-9_\-]{20,}",
        "sk-",
    ),
    _rule(
        "stripe-key",
        r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}|whsec_[0-9A-Za-z]{20,}",
        "_live_",
        "_test_",
        "whsec_",
    ),
    _rule("github-token", r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}", r"gh[pousr]_", "github_pat_"),
    _rule("gitlab-token", r"glpat-[A-Za-z0-9_\-]{20,}", "glpat-"),
    _rule(
        "slack-token",
        r"xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,}"
        r"|hooks\.slack\.com/services/[A-Za-z0-9/_\-]{10,}",
        "xox",
        "xapp-",
        r"hooks\.slack",
    ),
    _rule(
        "google-api-key",
        r"AIza[0-9A-Za-z_\-]{35}|GOCSPX-[A-Za-z0-9_\-]{20,}|ya29\.[A-Za-z0-9_\-]{20,}",
        "aiza",
        "gocspx",
        r"ya29\.",
    ),
    _rule("huggingface-token", r"hf_[A-Za-z0-9]{30,}", "hf_"),
    _rule("aws-access-key", r"(?:AKIA|ASIA)[0-9A-Z]{16}", "akia", "asia"),
    # Azure storage/service-bus connection strings and SAS signatures.
    _rule(
        "azure-key",
        r"(?i)(?P<keep>(?:AccountKey|SharedAccessKey|AccessKey)\s*=\s*)[A-Za-z0-9+/]{20,}={0,2}"
        r"|(?P<keep2>(?<![A-Za-z0-9_])sig=)[A-Za-z0-9%+/_\-]{16,}={0,2}",
        _ACCESS,
        "sig=",
    ),
    _rule("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*", "eyj"),
    # JSON escapes whitespace: "Bearer\\n<token>" in serialized text is still a bearer token.
    _rule("bearer-token", r"(?i)(?P<keep>bearer(?:\s|\\[ntr])+)[A-Za-z0-9._~+/=\-]{16,}", "bearer"),
    _rule(
        "basic-auth",
        r"(?i)(?P<keep>authorization[\"'\\]{0,3}\s*[:=]\s*[\"'\\]{0,2}basic(?:\s|\\[ntr])+)"
        r"[A-Za-z0-9+/]{8,}={0,2}",
        r"auth(?:orization|[_\-]?token)",
    ),
    _rule(
        "aws-secret-key",
        r"(?i)(?P<keep>(?:aws_secret_access_key|secret_access_key)[\"'\\]{0,3}\s*[=:]\s*[\"'\\]{0,2})"
        r"[A-Za-z0-9/+=]{40}",
        "secret",
    ),
    # password=…, "api_key": "…", pwd: … (a quoted value up to its closing quote).
    _rule(
        "password",
        r"(?i)(?P<keep>(?:" + _KEYWORDS + r")[\"'\\]{0,3}\s*[:=]\s*)"
        r"(?:(?P<q>\\?[\"'])(?!\[REDACTED)(?!(?P=q))[^\n]{1,500}?(?P<end>(?P=q))"
        r"|(?!\[REDACTED)[^\s\"'\\&,;<>{}\[\]()]{2,})",
        r"pass[wp]",
        "pwd",
        "secret",
        r"api[_\-]?key",
        "_token",
        "-token",
        _ACCESS,
        r"auth(?:orization|[_\-]?token)",
        "private",
    ),
)

# A bare AWS secret access key: 40 characters of base64 that mix upper case, lower case and digits
# (a hex hash or an ordinary id does not), within a short distance of "aws"/"secret" or a key id.
_AWS_CONTEXT = re.compile(r"(?i)(?<![a-z])aws|secret|(?:AKIA|ASIA)[0-9A-Z]{16}")
_AWS_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
)
_AWS_WINDOW = 120

# A base64 blob that decodes to text holding a secret (a Kubernetes secret, a Docker auth, an
# encoded .env). Candidates are long runs of base64 characters; a translate + substring test
# finds whether there is any run at all far faster than a regex can scan for one.
_B64_MIN = 24
_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
_B64_MAP = str.maketrans({chr(i): ("a" if chr(i) in _B64_CHARS else " ") for i in range(128)})
_B64_RUN = "a" * _B64_MIN
_B64_CANDIDATE = re.compile(r"[A-Za-z0-9+/_\-]{%d,}={0,2}" % _B64_MIN)
# Runs that are never base64 of text: hex ids and hashes (`tr-…`), single-case identifiers
# (`n_unrecovered_tool_errors`, `MAX_RETRY_COUNT`). Base64 of text mixes upper and lower case.
_HEX_ID = re.compile(r"[0-9a-fA-F_\-]+|[a-z]{1,4}-[0-9a-fA-F]+|[a-z0-9_\-]+|[A-Z0-9_\-]+")
_B64_DECODE_LIMIT = 1_000_000
_B64_DEPTH = 2

_AWS_GATES = tuple(_gate(g) for g in ("aws", "secret", "akia", "asia"))
_GATES = tuple(_GATE_CACHE.values())  # each searched once on text that holds no secret
_MIN_SECRET = 8  # no rule matches fewer characters


def _replacement(label: str) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        groups = m.groupdict()
        keep = groups.get("keep") or groups.get("keep2") or ""
        quote = groups.get("q") or ""
        end = groups.get("end") or ""
        if quote:  # the quote was consumed by the value alternative: put it back on both sides
            end = quote
        return f"{keep}{quote}[REDACTED:{label}]{end}"

    return replace


_REPLACE = {r.label: _replacement(r.label) for r in _RULES}


def redact_text(text: str, _depth: int = 0) -> str:
    if not text or len(text) < _MIN_SECRET:
        return text
    lowered = text.lower()
    blobs = _base64_runs(text)
    if not blobs and not any(g.search(lowered) for g in _GATES):
        return text
    for rule in _RULES:
        if any(g.search(lowered) for g in rule.gates):
            text = rule.pattern.sub(_REPLACE[rule.label], text)
    if any(g.search(lowered) for g in _AWS_GATES):
        text = _redact_aws_secret(text)
    if blobs and _depth < _B64_DEPTH:
        text = _B64_CANDIDATE.sub(lambda m: _redact_base64(m.group(0), _depth), text)
    return text


def _base64_runs(text: str) -> bool:
    """Whether the text has a run of base64 characters long enough to hide a secret, ids aside."""
    mapped = text.translate(_B64_MAP)
    start = mapped.find(_B64_RUN)
    while start >= 0:
        end = mapped.find(" ", start)
        end = len(text) if end < 0 else end
        if not _HEX_ID.fullmatch(text, start, end):
            return True
        start = mapped.find(_B64_RUN, end)
    return False


def _redact_aws_secret(text: str) -> str:
    spans = [(max(0, m.start() - _AWS_WINDOW), m.end() + _AWS_WINDOW) for m in _AWS_CONTEXT.finditer(text)]
    if not spans:
        return text
    out, last = [], 0
    for m in _AWS_CANDIDATE.finditer(text):
        if any(lo <= m.start() and m.end() <= hi for lo, hi in spans):
            out.append(text[last : m.start()] + "[REDACTED:aws-secret-key]")
            last = m.end()
    return "".join(out) + text[last:] if out else text


def _decoded_text(blob: str) -> str | None:
    """The text a base64 blob encodes, or None when it is not base64 of text."""
    if _HEX_ID.fullmatch(blob.rstrip("=")):
        return None
    alphabet = b"-_" if ("-" in blob or "_" in blob) else None
    body = blob.rstrip("=")[:_B64_DECODE_LIMIT]
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=alphabet)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", "replace")
    # Text, not bytes: an image or a random id decodes to mostly unprintable characters.
    bad = sum(1 for c in text[:512] if c == "\ufffd" or (c < " " and c not in "\n\r\t"))
    return text if text and bad <= len(text[:512]) // 20 else None


def _redact_base64(blob: str, depth: int) -> str:
    # The blob may be glued to a word (`x` + base64): try each start a 4-character group allows.
    for skip in range(4):
        decoded = _decoded_text(blob[skip:])
        if decoded is not None and redact_text(decoded, depth + 1) != decoded:
            return blob[:skip] + "[REDACTED:base64-secret]"
    return blob


def contains_secret(text: str) -> bool:
    return bool(text) and redact_text(text) != text


# Dict keys whose value is a credential whatever it looks like: {"password": "hunter2"}.
_SECRET_KEY = re.compile(r"(?i)(?:^|[_\-.])(?:" + _KEYWORDS + r"|secret|authorization|credentials?|token)$")
_NOT_SECRET_KEY = re.compile(
    r"(?i)(?:max|num|n|total|input|output|prompt|completion|page|next|cache|stop)[_\-]?tokens?$"
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


def redact(value: Any) -> Any:
    """Redact every string inside a JSON-like value (keys included); values of credential keys go whole."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if (
                isinstance(k, str)
                and isinstance(v, (str, int, float))
                and not isinstance(v, bool)
                and v != ""
                and is_secret_key(k)
            ):
                out[redact_text(k)] = "[REDACTED:password]"
            else:
                out[redact_text(k) if isinstance(k, str) else k] = redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# URIs in settings: shown and stored without their password, used with it.

_URI_SECRET_PARAM = re.compile(r"(?i)^(?:" + _KEYWORDS + r"|token|sig|secret|key|access_key|sas)$")


def mask_uri(uri: str | None) -> str:
    """`scheme://user:***@host/…`: the password and secret query parameters of a URI masked.

    Anything that is not a URI with credentials (`databricks`, `databricks://profile`, a sqlite
    path) comes back unchanged, so `mask_uri(uri) != uri` says whether the URI holds a secret.
    """
    if not uri or "://" not in uri:
        return uri or ""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = userinfo.split(":", 1)[0] + ":***@" + host
        elif parts.scheme not in ("databricks", "file"):
            netloc = "***@" + host  # a bare token as the user name (https://<token>@host)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_URI_SECRET_PARAM.match(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _URI_SECRET_PARAM.match(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
