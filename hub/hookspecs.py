"""The hooks of siyu-hub: this file is the plugin author's reference.

A plugin is a module (or object) with functions decorated ``@hub.hookimpl`` whose names match the
specs below.  It is found through the ``siyu`` entry-point group::

    [project.entry-points.siyu]
    weibo = "siyu_weibo"

Rules every hook follows:

- An implementation may accept any subset of a spec's arguments, by name.  Do **not** give an
  implementation's arguments default values: pluggy does not pass arguments that have defaults.
- Hooks are synchronous and cheap.  Network and database I/O belongs in the adapter's async
  methods, which the hub awaits.  A hook that must do I/O returns an awaitable and the hub
  resolves it with :func:`hub.plugins.await_me_maybe`.
- A misspelled hook name is an error when plugins load (``check_pending``), not a silent no-op.
- ``firstresult`` hooks stop at the first implementation that returns something other than
  ``None``; the hub's own default implementation runs last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from hub.adapter import Adapter
    from hub.events import Event
    from schemas import Fan, FanTier, Order

hookspec = pluggy.HookspecMarker("siyu")

# ---------------------------------------------------------------------------------------------
# Registration hooks: called once when plugins load.
# ---------------------------------------------------------------------------------------------


@hookspec
def register_platforms(register: Callable[[type[Adapter]], None]) -> None:
    """Hand the hub this plugin's platform adapter classes.

    Call ``register(AdapterClass)`` once per platform.  The hub checks that the class subclasses
    :class:`hub.Adapter`, names a ``platform``, declares ``capabilities`` whose methods it
    overrides, and that no other plugin registered the same platform; any failure is a
    :class:`hub.PluginError` naming this plugin.

    :param register: the callable that records one adapter class.
    """


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add commands to the ``siyu`` command line.

    Called once while the CLI is built.  Add commands with ``@cli.command()`` or sub-command
    groups with ``cli.add_typer(...)``.  Commands should accept ``--json`` like the built-in ones.

    :param cli: the root ``typer.Typer`` application.
    """


# ---------------------------------------------------------------------------------------------
# Observation hooks: called for every canonical event; return values are ignored.
# ---------------------------------------------------------------------------------------------


@hookspec
def track_event(event: Event) -> None:
    """Observe a canonical event (a fan upserted, members merged, points posted, a message received).

    Called after the event's transaction committed.  An exception raised here propagates to
    the caller, so keep implementations small and safe; queue anything slow.

    :param event: one of the dataclasses in :mod:`hub.events`; dispatch on ``event.name``.
    """


# ---------------------------------------------------------------------------------------------
# Collecting hooks: every implementation contributes; the results are combined.
# ---------------------------------------------------------------------------------------------


@hookspec
def identity_keys(fan: Fan) -> list[tuple[str, str]] | None:
    """Contribute keys that identify the same person across platforms.

    The hub already uses the phone hash, ``union_id`` and ``fan.identity_keys``.  Return a list
    of ``(kind, value)`` pairs, e.g. ``[("weibo_uid", "123")]``, or ``None``.  Blank and
    placeholder values (``""``, ``"null"``, ``"-1"``, all zeros) are discarded by the hub.

    :param fan: the canonical fan being stitched.
    :return: a list of ``(kind, value)`` pairs, or ``None`` to contribute nothing.
    """


# ---------------------------------------------------------------------------------------------
# Decision hooks: firstresult — the first non-None answer wins; the hub's default runs last.
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def decide_tier(fan: Fan, stats: dict[str, Any]) -> FanTier | None:
    """Decide a fan's tier on its platform account (潜在 prospect → 路人 passerby → 好感 fond → 真爱 devoted).

    Stops at the first non-``None`` result.  The hub's default rule: a fan who does not follow
    is a *prospect*; a follower with no interactions is a *passerby*; a follower with at least
    ``fond_interactions`` (default 3) interactions is *fond*; a follower with at least
    ``devoted_interactions`` (default 20) interactions, or one who is also a member with earned
    points, is *devoted*.

    :param fan: the canonical fan, with ``follow_state`` and ``interactions``.
    :param stats: figures the hub computed for the fan: ``interactions`` (total count),
        ``lifetime_points`` (of its member, 0 if none) and the configured thresholds.
    :return: a :class:`schemas.FanTier`, or ``None`` to let the next implementation decide.
    """


@hookspec(firstresult=True)
def earn_points(order: Order) -> int | None:
    """Decide how many points a paid order earns.

    Stops at the first non-``None`` result.  The hub's default rule gives one point per whole
    yuan paid (``amount_fen // 100``), scaled by the configured ``points_per_yuan``.  Refunds
    reverse what the order earned, proportionally for a partial refund; the hub does that, the
    hook only answers for the order as paid.

    :param order: the canonical order, status paid.
    :return: the points earned (``0`` for none), or ``None`` to let the next implementation decide.
    """
