"""Fake credentials of every format trace2eval redacts, each with the part that must never survive.

All fakes are built by concatenation so secret scanners stay quiet. `core` is what must not be
found anywhere after redaction (in any case); `text` is how the secret appears in a trace.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class Secret:
    label: str  # the rule expected to catch it
    text: str  # as it appears in a trace
    core: str  # what must not survive

    @property
    def cores(self) -> list[str]:
        return [self.core]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


_DAPI = "dapi" + "0f1e2d3c4b5a6978" * 2
_OPENAI = "sk-" + "proj-" + "Zq8RtY2uW4xN6vB0mK3jH5gF7dS9aL1p"
_PEM_BODY = "".join(f"MIIEv{i:03d}QIBADANBgkqhkiG9w0BAQEFAASC" + "Kcwgg" * 4 + "\n" for i in range(60))
_PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + _PEM_BODY + "-----END " + "RSA PRIVATE KEY-----"
_AWS_SECRET = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
_AZURE_KEY = "Eby8vdM02xNOcqF" + "lqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

SECRETS: list[Secret] = [
    Secret("databricks-token", _DAPI, _DAPI),
    Secret("databricks-token", _DAPI + "-2", _DAPI),
    Secret(
        "anthropic-key", "sk-" + "ant-api03-" + "Hq7Lp2Vx9Kd4Rt6Mz1Bn8Cw3Fy5Gs0Jk", "Hq7Lp2Vx9Kd4Rt6Mz1Bn8Cw3Fy5Gs0Jk"
    ),
    Secret("openai-key", _OPENAI, "Zq8RtY2uW4xN6vB0mK3jH5gF7dS9aL1p"),
    Secret("openai-key", "call_" + _OPENAI, "Zq8RtY2uW4xN6vB0mK3jH5gF7dS9aL1p"),  # glued to a word character
    Secret("openai-key", "sk-" + "T3BlbkFJ9sQ2wE4rT6yU8iO0pA1sD3fG5hJ7kL9", "T3BlbkFJ9sQ2wE4rT6yU8iO0pA1sD3fG5hJ7kL9"),
    Secret("github-token", "ghp_" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5", "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"),
    Secret("github-token", "github_pat_" + "11ABCDEFG0" + "123456789_abcdefghijklmnop", "123456789_abcdefghijklmnop"),
    Secret("gitlab-token", "glpat-" + "xY7zQ2wR9tP4vN6mK8jL", "xY7zQ2wR9tP4vN6mK8jL"),
    Secret("slack-token", "xoxb-" + "1234567890-" + "Qw3Er5Ty7Ui9Op", "Qw3Er5Ty7Ui9Op"),
    Secret(
        "slack-token", "https://hooks.slack.com/services/" + "T0ABC123/B0DEF456/" + "Xy9Zq8Wr7Vt6Us5", "Xy9Zq8Wr7Vt6Us5"
    ),
    Secret("google-api-key", "AIza" + "SyB1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R", "SyB1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R"),
    Secret("stripe-key", "sk_" + "live_" + "51HqPp2eZvKYlo2C8xTqL3aBcD", "51HqPp2eZvKYlo2C8xTqL3aBcD"),
    Secret("stripe-key", "rk_" + "live_" + "51HqPp2eZvKYlo2C9yUrM4bCdE", "51HqPp2eZvKYlo2C9yUrM4bCdE"),
    Secret("stripe-key", "pk_" + "live_" + "51HqPp2eZvKYlo2C0zVsN5cDeF", "51HqPp2eZvKYlo2C0zVsN5cDeF"),
    Secret("huggingface-token", "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567", "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"),
    Secret("aws-access-key", "AKIA" + "Z7Q4W2E8R6T1Y3U5", "Z7Q4W2E8R6T1Y3U5"),
    Secret("aws-access-key", "ASIA" + "Q9W8E7R6T5Y4U3I2", "Q9W8E7R6T5Y4U3I2"),
    Secret("aws-secret-key", "aws secret: " + _AWS_SECRET, _AWS_SECRET),  # bare, next to its context
    Secret("aws-secret-key", "aws_secret_access_key = " + _AWS_SECRET, _AWS_SECRET),
    Secret(
        "azure-key",
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + _AZURE_KEY + ";EndpointSuffix=core.windows.net",
        _AZURE_KEY[:40],
    ),
    Secret(
        "azure-key",
        "https://acme.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sig=" + "k3Lm9Np2Qr5St8Uv%2BWx1Yz4%3D",
        "k3Lm9Np2Qr5St8Uv",
    ),
    Secret(
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJ1c2VyLTQyIiwicm9sZSI6ImFkbWluIn0." + "Qm9ndXNTaWduYXR1cmVGb3JUZXN0cw",
        "eyJzdWIiOiJ1c2VyLTQyIiwicm9sZSI6ImFkbWluIn0",
    ),
    Secret("bearer-token", "Authorization: Bearer " + "Vb7Nm3Qx9Lp2Kd5Rt8Wz", "Vb7Nm3Qx9Lp2Kd5Rt8Wz"),
    Secret("basic-auth", "Authorization: Basic " + _b64("admin:" + "Opal-Tiger-42"), _b64("admin:" + "Opal-Tiger-42")),
    Secret("private-key", _PEM, "QIBADANBgkqhkiG9w0BAQEFAASC"),
    Secret("password", "password=" + "Hunter2-Orchid", "Hunter2-Orchid"),
    Secret("password", "passwd: " + "Velvet#Falcon9", "Velvet#Falcon9"),
    Secret("password", "pwd=" + "Quartz77Lynx", "Quartz77Lynx"),
    Secret("password", '{"user": "bob", "password": "' + "Maple Syrup 1999" + '"}', "Maple Syrup 1999"),
    Secret("url-password", "postgresql://app:" + "Sup3rS3cretPg" + "@db.internal:5432/prod", "Sup3rS3cretPg"),
    Secret("url-password", "https://deploy:" + "Gl4ss-Harbor" + "@git.example.com/repo.git", "Gl4ss-Harbor"),
    Secret("base64-secret", _b64("token=" + _DAPI + "\n"), _b64("token=" + _DAPI + "\n")[:24]),
    Secret("base64-secret", _b64('{"api_key": "' + _OPENAI + '"}'), _b64('{"api_key": "' + _OPENAI + '"}')[:24]),
]

# Look like secrets to a careless pattern, but are ordinary values that must stay untouched.
ORDINARY = [
    "Order sk-12 shipped; skip-ant-hill; the key to success is dapi-style naming",
    "trace tr-" + "a3f1c9e2b4d6f8a0c2e4b6d8f0a1c3e5" + " and span " + "4f2a9c1e7b3d5f60",
    "request id 123e4567-e89b-12d3-a456-426614174000 took 845 ms",
    "commit "
    + "9fceb02d0ae598e95dc970b74767f19372d61af8"
    + " (sha1) and sha256 "
    + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "The secret to a good risk-adjusted-return-calculation is patience; task-management-system-overview",
    "aws region us-east-1, bucket acme-logs-2026, object key reports/2026/01/summary.csv",
    "Visit https://example.com:8443/path?q=1 or mailto:someone@example.com",
    "We passed the test; the compass points north; pwd prints the working directory",
    "Enter your password on the next screen.",
    "max_tokens=512 and tokens_in=1200 were used",
    "snake_case_identifier_that_is_rather_long_indeed and base64 word QUJD",
]
