"""``siyu.toml``: where it is found, how it is read and how it is checked.

The file is found at ``--config``, else ``$SIYU_CONFIG``, else ``./siyu.toml``.  A string value
written ``env:NAME`` is read from the environment variable ``NAME``; ``file:PATH`` from a file
(relative to the config file's folder, trailing newline stripped).  Each account's platform keys
are validated by that platform adapter's ``Config`` model.  Every problem found is collected, so
one run of ``siyu config check`` names every bad key.  Values never appear in errors.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, SecretStr, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from hub.adapter import AdapterConfig
from hub.errors import ConfigError, UnknownPlatform
from hub.people.phones import PhoneVault
from hub.platform.retry import RetryPolicy

if TYPE_CHECKING:
    from hub.plugins import PluginHost

__all__ = ["DEFAULT_DATABASE_URL", "AccountSettings", "DaemonSection", "LedgerSection", "OutboxSection", "Settings", "find_config", "load_settings"]

DEFAULT_DATABASE_URL = "sqlite:///siyu.db"
_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class DatabaseSection(_Strict):
    url: str = DEFAULT_DATABASE_URL


class SecuritySection(_Strict):
    phone_key: SecretStr | None = Field(default=None, description="HMAC key for phone hashes")
    phone_encryption_key: SecretStr | None = Field(default=None, description="Fernet key; unset: no clear text kept")


WEEK = 7 * 86_400
"""The longest interval or wait the configuration takes, in seconds."""
MAX_COUNT = 2**31 - 1
"""The largest count or points total the database's INTEGER columns hold on every backend."""


class AccountSection(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    platform: str = Field(min_length=1)
    id: str = Field(min_length=1)
    name: str | None = None
    base_url: str | None = None
    rate_limits: dict[str, tuple[PositiveFloat, PositiveFloat]] | None = Field(
        default=None, description='{"*" or a path: [requests, per_seconds]}; overrides the plugin\'s documented limits'
    )
    sync_interval_seconds: float | None = Field(default=None, gt=0, le=WEEK, description="overrides [daemon] for this account")


class LedgerSection(_Strict):
    """The ``[ledger]`` section: the rules of points, levels, tiers and stitching."""

    points_per_yuan: int = Field(default=1, ge=0, le=1_000_000, description="points a paid yuan earns (the default rule)")
    level_thresholds: list[int] = Field(default_factory=lambda: [1_000, 5_000, 20_000],
                                        description="lifetime points at which levels 1, 2, 3 … begin")
    earned_points_expire_days: int | None = Field(default=None, ge=1, le=36_500,
                                                  description="none: earned points never expire")
    identity_key_limit: int = Field(default=20, ge=2, le=100_000, description="a key shared by more fans is blocked")
    fond_interactions: int = Field(default=3, ge=1, le=MAX_COUNT)
    devoted_interactions: int = Field(default=20, ge=1, le=MAX_COUNT)

    @field_validator("level_thresholds")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(t <= 0 for t in value) or any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("must be strictly increasing positive integers")
        if any(t > MAX_COUNT for t in value):
            raise ValueError(f"a threshold above {MAX_COUNT} points can never be reached")
        return value


class DaemonSection(_Strict):
    """The ``[daemon]`` section: how often ``siyu daemon`` runs each job (seconds)."""

    sync_interval_seconds: float = Field(default=900, gt=0, le=WEEK, description="each account's streams, this often")
    jitter_seconds: float = Field(default=30, ge=0, le=WEEK, description="random seconds added to each sync's due time")
    outbox_interval_seconds: float = Field(default=5, gt=0, le=WEEK, description="the outbox is drained this often")
    apply_interval_seconds: float = Field(default=2, gt=0, le=WEEK, description="stored callbacks are applied this often")
    stop_timeout_seconds: float = Field(default=30, gt=0, le=WEEK, description="SIGTERM: exit within this")
    failure_backoff_seconds: float = Field(default=30, gt=0, le=WEEK,
                                           description="first wait after a failed run; doubles")


class OutboxSection(_Strict):
    """The ``[outbox]`` section: how long ``siyu daemon`` keeps retrying an item before it is dead."""

    give_up_after_hours: float = Field(default=24, gt=0, le=24 * 366, description="an item failing this long is dead")
    retry_initial_seconds: float = Field(default=30, gt=0, le=WEEK, description="first wait after a failed send; doubles")
    retry_max_seconds: float = Field(default=1800, gt=0, le=WEEK, description="the longest wait between sends")


class ConfigFile(_Strict):
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    security: SecuritySection = Field(default_factory=SecuritySection)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    ledger: LedgerSection = Field(default_factory=LedgerSection)
    daemon: DaemonSection = Field(default_factory=DaemonSection)
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    accounts: list[AccountSection] = Field(default_factory=list)


@dataclass(frozen=True)
class AccountSettings:
    """One configured account with its validated platform options."""

    platform: str
    id: str
    name: str | None
    base_url: str | None
    options: AdapterConfig
    rate_limits: dict[str, tuple[float, float]] | None = None
    sync_interval_seconds: float | None = None

    def __repr__(self) -> str:
        return f"AccountSettings(platform={self.platform!r}, id={self.id!r})"


@dataclass(frozen=True)
class Settings:
    """A checked configuration."""

    path: Path | None
    database_url: str
    phones: PhoneVault
    accounts: list[AccountSettings] = field(default_factory=list)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ledger: LedgerSection = field(default_factory=LedgerSection)
    daemon: DaemonSection = field(default_factory=DaemonSection)
    outbox: OutboxSection = field(default_factory=OutboxSection)

    def account(self, platform: str, account_id: str) -> AccountSettings:
        for account in self.accounts:
            if account.platform == platform and account.id == account_id:
                return account
        raise ConfigError(f"no account {platform}:{account_id} in the configuration")


def find_config(explicit: str | Path | None = None) -> Path:
    """The config file's path: ``explicit``, else ``$SIYU_CONFIG``, else ``./siyu.toml``."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SIYU_CONFIG"):
        return Path(os.environ["SIYU_CONFIG"])
    return Path("siyu.toml")


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve(value: Any, where: tuple[Any, ...], base: Path, problems: list[tuple[str, str]]) -> Any:
    """Replace ``env:`` and ``file:`` strings, recording a problem for each one that is missing."""
    if isinstance(value, dict):
        return {k: _resolve(v, (*where, k), base, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, (*where, i), base, problems) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            problems.append((_loc(where), f"environment variable {name} is not set"))
            return None
        return os.environ[name]
    if isinstance(value, str) and value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.append((_loc(where), f"cannot read file {path}: {exc.strerror or exc}"))
            return None
    return value


def _pydantic_problems(exc: ValidationError, prefix: tuple[Any, ...]) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append((_loc((*prefix, *err["loc"])), message))
    return problems


def parse_settings(raw: dict[str, Any], host: PluginHost, *, path: Path | None = None) -> Settings:
    """Check an already-parsed TOML document against the installed plugins.

    Each section and each account is checked on its own, so that one run reports every problem.
    A valid ``[ledger]`` section also sets the parameters of ``host``'s default rules.

    :raises ConfigError: with every problem found in ``problems``.
    """
    problems: list[tuple[str, str]] = []
    base = path.parent if path else Path.cwd()
    doc = _resolve(raw, (), base, problems)
    unresolved = {loc for loc, _ in problems}

    def check(model: type[_M], data: Any, prefix: tuple[Any, ...]) -> _M | None:
        try:
            return model.model_validate(data if data is not None else {})
        except ValidationError as exc:
            found = _pydantic_problems(exc, prefix)
            problems.extend(p for p in found if p[0] not in unresolved)
            return None

    for key in sorted(set(doc) - set(ConfigFile.model_fields)):
        problems.append((key, "unknown key"))
    database = check(DatabaseSection, doc.get("database"), ("database",))
    security = check(SecuritySection, doc.get("security"), ("security",))
    retry = check(RetryPolicy, doc.get("retry"), ("retry",)) or RetryPolicy()
    ledger = check(LedgerSection, doc.get("ledger"), ("ledger",)) or LedgerSection()
    daemon = check(DaemonSection, doc.get("daemon"), ("daemon",)) or DaemonSection()
    outbox = check(OutboxSection, doc.get("outbox"), ("outbox",)) or OutboxSection()
    database_url = _database_url(database.url, base, problems) if database else ""
    phones = None
    if security is not None:
        try:
            phones = PhoneVault(security.phone_key, security.phone_encryption_key)
        except ConfigError as exc:
            if "security.phone_key" not in unresolved:
                problems.append(("security", str(exc)))
    entries = doc.get("accounts", [])
    if not isinstance(entries, list):
        problems.append(("accounts", "must be a list of [[accounts]] tables"))
        entries = []
    accounts: list[AccountSettings] = []
    seen: set[tuple[str, str]] = set()
    for i, data in enumerate(entries):
        entry = check(AccountSection, data, ("accounts", i))
        if entry is None:
            continue
        if (entry.platform, entry.id) in seen:
            problems.append((f"accounts[{i}].id", f"duplicate account {entry.platform}:{entry.id}"))
        seen.add((entry.platform, entry.id))
        try:
            adapter = host.adapter_class(entry.platform)
        except UnknownPlatform as exc:
            problems.append((f"accounts[{i}].platform", str(exc)))
            continue
        options = check(adapter.Config, entry.model_extra or {}, ("accounts", i))
        if options is not None:
            accounts.append(
                AccountSettings(entry.platform, entry.id, entry.name, entry.base_url, options, entry.rate_limits,
                                entry.sync_interval_seconds)
            )
    if problems or phones is None:
        where = f" in {path}" if path else ""
        summary = "; ".join(f"{loc}: {msg}" for loc, msg in problems)
        raise ConfigError(f"{len(problems)} problem(s){where}: {summary}", problems=problems)
    # the hub's default earning and tier rules take their parameters from [ledger]
    host.rules.points_per_yuan = ledger.points_per_yuan
    host.rules.fond_interactions = ledger.fond_interactions
    host.rules.devoted_interactions = ledger.devoted_interactions
    return Settings(path=path, database_url=database_url, phones=phones, accounts=accounts, retry=retry,
                    ledger=ledger, daemon=daemon, outbox=outbox)


def _database_url(url: str, base: Path, problems: list[tuple[str, str]]) -> str:
    """Check the URL; a relative SQLite path is taken relative to the config file's folder."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        problems.append(("database.url", "not a database URL (e.g. sqlite:///siyu.db)"))
        return url
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        if not database.startswith("file:") and not Path(database).is_absolute():
            return parsed.set(database=str((base / database).resolve())).render_as_string(hide_password=False)
    return url


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a :class:`ConfigError` naming it."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}: run `siyu init` or pass --config") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", problems=[("(file)", str(exc))]) from None


def load_settings(host: PluginHost, explicit: str | Path | None = None) -> Settings:
    """Find, read and check the configuration."""
    path = find_config(explicit)
    return parse_settings(read_toml(path), host, path=path)
