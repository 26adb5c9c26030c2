"""State shared by the commands of one ``siyu`` run: the plugins, the config path and the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # imported when a command uses them, not for ``siyu --help``
    import sqlalchemy as sa

    from hub.config import Settings
    from hub.plugins import PluginHost

__all__ = ["Context", "get_context"]


@dataclass
class Context:
    config_path: Path | None = None
    debug: bool = False
    _host: PluginHost | None = field(default=None, repr=False)

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            from hub.plugins import load_plugins

            self._host = load_plugins()
        return self._host

    @cached_property
    def settings(self) -> Settings:
        from hub.config import load_settings

        return load_settings(self.host, self.config_path)

    @property
    def policy(self) -> Any:
        """The ledger's rules from ``[ledger]`` in siyu.toml."""
        from hub.ledger import LedgerPolicy

        return LedgerPolicy(level_thresholds=tuple(self.settings.ledger.level_thresholds))

    def engine(self) -> sa.Engine:
        """The database, refusing a schema that is behind."""
        from hub.storage import database as storage

        return storage.open_database(self.settings.database_url)


def get_context(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj
