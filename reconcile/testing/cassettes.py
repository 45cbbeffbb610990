"""vcrpy settings shared by the cassette recorder (``make cassettes``) and the tests that replay.

Requests are matched on method, path and query, not host or port, so a cassette recorded against
the fake Stripe on any port, or against Stripe test mode, replays anywhere. Headers that carry a
key, an account or the recording machine's details are dropped at record time.
"""

from __future__ import annotations

from pathlib import Path

import vcr

CASSETTES = Path(__file__).resolve().parents[2] / "fixtures" / "cassettes"
SECRET_HEADERS = (
    "authorization",
    "stripe-account",
    "user-agent",
    "x-stripe-client-user-agent",
    "x-stripe-client-telemetry",
    "idempotency-key",
    "cookie",
    "set-cookie",
)


def _scrub_response(response: dict) -> dict:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SECRET_HEADERS:
            del headers[name]
    return response


def recorder(record_mode: str = "none") -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=("method", "path", "query"),
        filter_headers=list(SECRET_HEADERS),
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
