"""Render a plan as text (for people), JSON (a stable, versioned schema) or markdown (CI summaries).

Rendering is pure: it returns a string (or the text report in pieces), never prints and never
touches the database.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from .escape import escape, escape_lines, json_text
from .plan import Action, Change, Operation, Operations, Plan, is_record
from .registry import BY_RECORD, HEADINGS
from .values import encode, show

SCHEMA = "reconcile.plan/v1"
PHRASES = {
    Action.CREATE: "to create",
    Action.UPDATE: "to update",
    Action.RECREATE_ITEMS: "item sets to recreate",
    Action.LINK_USER: "users to link",
    Action.CREATE_USER: "users to create",
    Action.ORPHAN: "orphaned",
    Action.SKIP: "skipped",
}


# The same things, done: the "Applied:" line counts and words them as the plan line does.
DONE = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.RECREATE_ITEMS: "item sets recreated",
    Action.LINK_USER: "users linked",
    Action.CREATE_USER: "users created",
}


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    return "Plan: " + ", ".join(f"{counts[a.key]} {PHRASES[a]}" for a in Action) + "."


def applied_line(counts: dict[str, int], seconds: float) -> str:
    """``Applied: 32 created, 0 updated, ..., 2 users linked, 3 users created in 0.4s.``: the plan
    line's write actions, in its order and words, as the apply counted them."""
    done = ", ".join(f"{counts.get(a.key, 0)} {DONE[a]}" for a in Action if a in DONE)
    return f"Applied: {done} in {seconds:.1f}s."


def _change_detail(change: Change) -> str:
    if isinstance(change.old, dict) and isinstance(change.new, dict):
        # imported here: 3.6 MiB of RSS (measured after Django's setup) that a process showing no
        # change of a dict (a worker, a no-op or a first pull) would carry for its whole life
        from deepdiff import DeepDiff

        tree = DeepDiff(change.old, change.new, view="tree")
        key = lambda item: repr(item.path(output_format="list")[0])  # noqa: E731
        added = sorted(f"+{key(i)}" for i in tree.get("dictionary_item_added", []))
        removed = sorted(f"-{key(i)}" for i in tree.get("dictionary_item_removed", []))
        changed = sorted(
            f"{key(i)}: {i.t1!r} -> {i.t2!r}" for kind in ("values_changed", "type_changes") for i in tree.get(kind, [])
        )
        return f"{change.field}: " + ", ".join(added + removed + changed)
    return f"{change.field}: {show(change.old)} -> {show(change.new)}"


def _closing_line(plan: Plan) -> str:
    if not plan.in_sync:
        return summary_line(plan)
    if plan.operations:
        counts = plan.summary()
        return f"No changes detected (reported only: {counts['orphan']} orphaned, {counts['skip']} skipped)."
    return "No changes detected."


# Lines per piece of a text report: a report of 200,000 operations goes out in pieces, never whole
# in memory (its lines and their joined text were the peak of a first pull, 27 MiB at N=100,000).
CHUNK_LINES = 10_000


def text_lines(plan: Plan, verbosity: int = 1) -> Iterator[str]:
    """The text report's lines, unescaped."""
    heading = None
    ops = plan.operations
    for entry in ops.entries if isinstance(ops, Operations) else ops:
        if is_record(entry):  # a create held as its record (``Operations``): its line without the Create
            op = None
            entry_heading, line = _create_line(type(entry))
            text = line(entry)
        else:
            op = entry
            entry_heading, text = HEADINGS[op.model], f"  {op.action.value} {op.describe()}"
        if entry_heading != heading:
            heading = entry_heading
            yield f"{heading}:"
        yield text
        if op is not None and verbosity >= 2 and op.action in (Action.UPDATE, Action.RECREATE_ITEMS):
            yield from (f"      {_change_detail(c)}" for c in op.changes)
    if plan.notes:
        yield "Notes:"
        yield from (f"  ? {note.describe()}" for note in plan.notes)
    yield _closing_line(plan)
    for resource, cursor in sorted(plan.next_cursor.items()):
        yield f"More {resource} in Stripe: run again with --starting_after {cursor} for the next window."


@functools.cache
def _create_line(record_type: type) -> tuple[str, Callable[[Any], str]]:
    """The heading and the report line of a record's create, as ``Create.describe`` words it: a
    first pull's report is 200,000 of these lines, and making each record's ``Create`` and looking
    its resource up per line was half of the report's time."""
    resource = BY_RECORD[record_type]
    prefix = f"  {Action.CREATE.value} create {resource.model} "
    labels = resource.label

    def line(record: Any) -> str:
        label = next((text for name in labels if (text := getattr(record, name))), None)
        return f"{prefix}{record.id} ({label})" if label else prefix + record.id

    return HEADINGS[resource.model], line


def text_chunks(plan: Plan, verbosity: int = 1) -> Iterator[str]:
    """The text report in pieces of whole lines, each ending with its line break; joined, they are
    ``render_text``. Each line is escaped: Stripe's text cannot add a line of its own."""
    lines: list[str] = []
    for line in text_lines(plan, verbosity):
        lines.append(line)
        if len(lines) == CHUNK_LINES:
            yield escape_lines(lines) + "\n"
            lines = []
    if lines:
        yield escape_lines(lines) + "\n"


def render_text(plan: Plan, verbosity: int = 1) -> str:
    return "".join(text_chunks(plan, verbosity))


def as_dict(plan: Plan, max_operations: int | None = None) -> dict[str, Any]:
    """The JSON report; ``max_operations`` keeps the first ones only (the audit of a huge run)."""
    shown = plan.operations if max_operations is None else plan.operations[:max_operations]
    return _report(plan, [operation_dict(op) for op in shown], len(shown))


def _report(plan: Plan, operations: list[dict[str, Any]], shown: int) -> dict[str, Any]:
    """The report's keys, in their order: ``operations`` are the first ``shown`` of the plan's."""
    report = {
        "schema": SCHEMA,
        "in_sync": plan.in_sync,
        "summary": plan.summary(),
        "operations": operations,
        "notes": [{"model": n.model, "id": n.id, "message": n.message} for n in plan.notes],
        "next_cursor": dict(sorted(plan.next_cursor.items())),
    }
    if shown < len(plan.operations):
        report["operations_omitted"] = len(plan.operations) - shown
    return report


def operation_dict(op: Operation, created_values: bool = True) -> dict[str, Any]:
    """One operation as the JSON report has it; without ``created_values``, a create has no
    ``changes`` (its every field, from nothing)."""
    entry = {
        "action": op.action.key,
        "symbol": op.action.value,
        "model": op.model,
        "id": op.id,
        "changes": encode(op.changes),
        "reason": op.reason,
        "description": op.describe(),
    }
    if not created_values and op.action is Action.CREATE:
        del entry["changes"]
    return entry


def as_json_text(
    plan: Plan,
    max_operations: int,
    extra: dict[str, Any],
    clean: Callable[[Any], Any] = lambda value: value,
    created_values: bool = True,
) -> str:
    """``as_dict``'s report with ``extra`` keys, as compact JSON text made one operation at a time
    (each through ``clean`` first); ``created_values``: as ``operation_dict``. The audit keeps a
    first pull's first 1,000 operations: their dicts, all at once, were 10 MiB at the run's highest
    point of memory."""
    report = {**_report(plan, [], min(max_operations, len(plan.operations))), **extra}
    del report["operations"]  # written last, one at a time
    parts = [json.dumps(clean(report))[:-1], ', "operations": [']
    for i, op in enumerate(islice(plan.operations, max_operations)):
        entry = json.dumps(clean(operation_dict(op, created_values)))
        parts += (", ", entry) if i else (entry,)
    parts.append("]}")
    return "".join(parts)  # one copy of the text


def render_json(plan: Plan) -> str:
    # JSON escapes control characters itself; a lone surrogate is escaped too, so the text encodes.
    return json_text(json.dumps(as_dict(plan), indent=2, ensure_ascii=False)) + "\n"


def _cell(text: str) -> str:
    return escape(text).replace("|", "\\|")


def render_markdown(plan: Plan) -> str:
    lines = ["### Stripe reconcile plan", ""]
    if not plan.operations:
        lines.append("**No changes detected.** The database agrees with Stripe.")
    else:
        lines += [f"**{_closing_line(plan)}**", "", "| | Action | Model | Id | Details |", "|---|---|---|---|---|"]
        for op in plan.operations:
            if op.action is Action.CREATE:
                details = op.describe()
            else:
                details = op.reason or "; ".join(_change_detail(c) for c in op.changes)
            cells = (op.action.value, op.action.key, op.model, f"`{_cell(op.id)}`", _cell(details or op.describe()))
            lines.append("| " + " | ".join(cells) + " |")
    if plan.notes:
        lines += ["", "Notes:", ""] + [f"- {_cell(n.describe())}" for n in plan.notes]
    return "\n".join(lines) + "\n"


def render(plan: Plan, fmt: str = "text", verbosity: int = 1) -> str:
    """The report in ``fmt``; only the text report has levels of detail."""
    if fmt == "text":
        return render_text(plan, verbosity)
    return {"json": render_json, "markdown": render_markdown}[fmt](plan)


def render_chunks(plan: Plan, fmt: str = "text", verbosity: int = 1) -> Iterator[str]:
    """``render`` in pieces to write one after the other: the text report by ``CHUNK_LINES`` lines,
    the others (a JSON document, a markdown table for a CI summary) whole."""
    if fmt == "text":
        return text_chunks(plan, verbosity)
    return iter([render(plan, fmt, verbosity)])


__all__ = [
    "render",
    "render_chunks",
    "render_text",
    "render_json",
    "render_markdown",
    "as_dict",
    "summary_line",
    "applied_line",
    "SCHEMA",
]
