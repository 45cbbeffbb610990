"""Stripe events through the same engine as a pull: the signed webhook endpoint, the event log,
the processing of one event, and the incremental pull's cursor."""
