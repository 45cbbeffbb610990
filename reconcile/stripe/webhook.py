"""Verifying a webhook's ``Stripe-Signature`` with stripe-python's own ``WebhookSignature``.

stripe-python checks one secret; during a rotation Stripe signs with every active secret (one
``v1`` each), so each configured secret is tried in turn. Errors say what kind of failure it was,
never the secret or the body.
"""

from __future__ import annotations

from collections.abc import Sequence

import stripe

DEFAULT_TOLERANCE = 300  # seconds, Stripe's default

_KINDS = (
    ("No Stripe-Signature header", "missing"),
    ("Unable to extract timestamp", "malformed"),
    ("No signatures found with expected scheme", "malformed"),
    ("No signatures found matching", "mismatch"),
    ("Timestamp outside the tolerance zone", "expired"),
)


class SignatureError(Exception):
    """A request whose signature does not prove it comes from Stripe (answered 400)."""

    def __init__(self, kind: str):
        super().__init__(f"webhook signature {kind}")
        self.kind = kind  # missing, malformed, mismatch, expired, not_utf8


def _kind(error: stripe.SignatureVerificationError) -> str:
    message = str(error.user_message or error)
    return next((kind for prefix, kind in _KINDS if message.startswith(prefix)), "mismatch")


def verify(payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int = DEFAULT_TOLERANCE) -> None:
    """Return when ``header`` signs ``payload`` with one of ``secrets`` within ``tolerance`` seconds;
    raise ``SignatureError`` otherwise."""
    if not secrets:
        raise SignatureError("no_secret")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("not_utf8") from None
    kinds = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as error:
            kinds.append(_kind(error))
    # "expired" only comes from a secret whose signature matched: say that rather than mismatch.
    raise SignatureError("expired" if "expired" in kinds else kinds[0])
