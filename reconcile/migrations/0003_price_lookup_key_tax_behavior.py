"""Price.lookup_key and Price.tax_behavior, Stripe's price fields of those names (made by
makemigrations with Django 5.2.19, then written compactly)."""

from django.db import migrations, models

TAX_BEHAVIOR_HELP = "inclusive, exclusive or unspecified; NULL when Stripe omits it."


class Migration(migrations.Migration):
    dependencies = [("reconcile", "0002_labels_and_audit_index")]
    operations = [
        migrations.AddField(
            "price", "lookup_key", models.CharField(blank=True, db_index=True, max_length=200, null=True)
        ),
        migrations.AddField(
            "price",
            "tax_behavior",
            models.CharField(blank=True, help_text=TAX_BEHAVIOR_HELP, max_length=16, null=True),
        ),
    ]
