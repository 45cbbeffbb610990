"""The standalone ``reconcile`` command (click). Its subcommands run the management commands
themselves (``call_command``), so both share one implementation and the same exit codes."""

from __future__ import annotations

import os
import sys

import click

from .options import IMPORT_OPTIONS, VERBOSITY_HELP, Opt, declared

EMBEDDED = "reconcile.embedded_settings"
COMMANDS = {
    "pull": ("pull_stripe", "Products and prices, customers and subscriptions: one plan, one transaction."),
    "products": ("update_stripe_products", "Products and prices (archived ones too) and feature links."),
    "customers": ("update_stripe_customers", "Customers and their links to Django users by email."),
    "subscriptions": ("update_stripe_subscriptions", "Subscriptions of every status, with their items."),
}


def _setup(settings: str | None, database: str | None, needs_key: bool = True) -> None:
    import django
    from django.conf import settings as django_settings

    if django_settings.configured:
        return
    if database:
        os.environ["RECONCILE_DATABASE"] = database
    module = settings or os.environ.get("DJANGO_SETTINGS_MODULE") or EMBEDDED
    if module == EMBEDDED and needs_key:
        _refuse_unusable_key()  # before the settings create the SQLite file and its key file
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    if module != EMBEDDED and os.getcwd() not in sys.path:
        # Your project's settings live in the current directory, as with manage.py; appended, not
        # prepended, so that a file there (a stray stripe.py) can never shadow an installed package.
        # The built-in settings need nothing from the current directory and import nothing from it.
        sys.path.append(os.getcwd())
    django.setup()
    if module == EMBEDDED:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def _refuse_unusable_key() -> None:
    """With the built-in settings the key can only come from $STRIPE_API_KEY: refuse a missing or
    publishable one at once (exit 2), naming that variable, before anything is created or sent."""
    from .conf import STANDALONE_KEY_HINT, key_problem

    problem = key_problem(os.environ.get("STRIPE_API_KEY", ""))
    if problem:
        click.echo(f"Error: {problem[0].upper()}{problem[1:]}. {STANDALONE_KEY_HINT}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--settings",
    metavar="MODULE",
    help="Your Django settings module (default: $DJANGO_SETTINGS_MODULE, else built-in settings with a SQLite file).",
)
@click.option(
    "--database",
    metavar="PATH",
    help="With the built-in settings: the SQLite file (default: ./reconcile.sqlite3, or $RECONCILE_DATABASE).",
)
@click.version_option(package_name="reconcile")
@click.pass_context
def main(ctx: click.Context, settings: str | None, database: str | None) -> None:
    """Keep a Django database in exact agreement with a Stripe account.

    Reads the key from $STRIPE_API_KEY (and $STRIPE_API_BASE for a local server) with the built-in
    settings, or from your project's RECONCILE settings. Exit codes: 0 in sync or applied, 1 drift
    found under --check, 2 error.
    """
    ctx.obj = {"settings": settings, "database": database}


def _call(ctx: click.Context, command: str, **kwargs) -> None:
    """Run a management command with its system checks (a bad setting exits 2, as with manage.py)."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    try:
        call_command(command, stdout=sys.stdout, stderr=sys.stderr, skip_checks=False, **kwargs)
    except CommandError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(exc.returncode)


def _sync_command(name: str, command: str, summary: str, windowed: bool) -> click.Command:
    @click.pass_context
    def callback(ctx: click.Context, **options) -> None:
        _setup(ctx.obj["settings"], ctx.obj["database"])
        kwargs = {k: v for k, v in options.items() if v is not None or k == "progress"}
        _call(ctx, command, **kwargs)

    params = [_click(opt) for opt in declared(windowed)]
    params.append(
        click.Option(
            ["-v", "--verbosity"], type=click.IntRange(0, 3), default=1, show_default=True, help=VERBOSITY_HELP
        )
    )
    return click.Command(name, callback=callback, params=params, help=f"{summary}\n\nSame as `manage.py {command}`.")


def _click(opt: Opt) -> click.Option:
    """An option declared in ``options`` as a click option (same flags, destination and help)."""
    if opt.kind == "flag":
        return click.Option([*opt.flags, opt.dest], is_flag=True, help=opt.help)
    if opt.kind == "switch":
        return click.Option([f"{opt.flags[0]}/--no-{opt.flags[0][2:]}", opt.dest], default=None, help=opt.help)
    if opt.kind == "choice":
        return click.Option([*opt.flags, opt.dest], type=click.Choice(opt.choices), default=opt.default, help=opt.help)
    kind = click.IntRange(*opt.bounds) if opt.kind == "int" and opt.bounds else None
    return click.Option([*opt.flags, opt.dest], type=kind, metavar=opt.metavar, help=opt.help)


for _name, (_command, _summary) in COMMANDS.items():
    main.add_command(_sync_command(_name, _command, _summary, _name in ("customers", "subscriptions")))


@main.command("import-drf-stripe", params=[_click(opt) for opt in IMPORT_OPTIONS])
@click.pass_context
def import_drf_stripe(ctx: click.Context, **options) -> None:
    """Import drf-stripe-subscription's customer-to-user links from its drf_stripe_stripeuser table.

    Same as `manage.py reconcile_import_drf_stripe`: use it with --settings (your project's
    database); then run `reconcile pull`.
    """
    _setup(ctx.obj["settings"], ctx.obj["database"], needs_key=False)
    _call(ctx, "reconcile_import_drf_stripe", **options)


@main.command("fake-stripe", context_settings={"ignore_unknown_options": True})
@click.option(
    "--fixtures",
    type=click.Path(exists=True, file_okay=False),
    help="A directory with products.json, prices.json, customers.json, subscriptions.json "
    "(default: the demo account shipped in the package).",
)
@click.option("--port", type=int, default=12111, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback only.")
@click.option("--latency", type=float, default=0.0, show_default=True, help="Seconds slept per request.")
@click.option("--rate-limit", type=float, help="Requests per second per endpoint, then 429s like Stripe.")
def fake_stripe(fixtures: str | None, port: int, host: str, latency: float, rate_limit: float | None) -> None:
    """Serve the project's fake Stripe (a test double, not Stripe) on loopback, for trials."""
    from .testing.fakestripe import DEMO_FIXTURES
    from .testing.fakestripe import main as serve_main

    args = ["--fixtures", fixtures or str(DEMO_FIXTURES), "--port", str(port), "--host", host]
    args += ["--latency", str(latency)]
    if rate_limit:
        args += ["--rate-limit", str(rate_limit)]
    sys.exit(serve_main(args))


if __name__ == "__main__":
    main()
