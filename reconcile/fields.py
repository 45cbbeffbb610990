"""Model fields of the app's own."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class ExactDecimalField(models.DecimalField):
    """A DecimalField that keeps every digit on SQLite too.

    SQLite's ``decimal`` columns have NUMERIC affinity: a value becomes an 8-byte float, 15
    significant digits, and Django reads it back rounded. Stripe's decimal amounts have up to 12
    decimal places (``1000.123456789012``): stored so, a row would differ from Stripe on every run.
    Here SQLite gets a TEXT column holding the exact decimal; every other database gets its own
    ``numeric(max_digits, decimal_places)``.
    """

    def db_type(self, connection) -> str:
        if connection.vendor == "sqlite":
            return "text"
        return connection.data_types["DecimalField"] % self.db_type_parameters(connection)

    def get_internal_type(self) -> str:
        # Not "DecimalField": the SQLite backend would read the text through its float converter.
        return "TextField"

    def from_db_value(self, value, expression, connection) -> Decimal | None:
        return None if value is None else Decimal(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        return str(value) if connection.vendor == "sqlite" and isinstance(value, Decimal) else value
