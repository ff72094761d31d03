"""What a configuration reload (SIGHUP) changes, decided before anything is applied.

Most of the configuration applies to the next run: shops and resources, schedules, credentials,
``[sync]`` settings, parking back-off, logging. What the daemon opened once at start cannot move
under it: the state database and sink (``database``, ``[sink] url``), the work directory and the
listening address. A file changing any of those is rejected whole, so the running configuration
stays — the operator restarts to apply it. The connection pool keeps its size until a restart
too, but that alone is only worth a warning.

:func:`plan_reload` is the decision (pure); :func:`read_reload` reads the file and decides, and
:meth:`shopsync.daemon.app.Daemon.reload` applies it (the scheduler's jobs follow
:func:`shopsync.daemon.scheduler.diff_specs`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shopsync.errors import ConfigError
from shopsync.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReloadPlan:
    """Shops added, removed and changed by a reload (names, each sorted), and the side notes."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    #: ``[daemon] log_format`` or ``log_level`` differ (applied when the daemon owns logging).
    logging_changed: bool = False
    #: ``[sync] max_connections`` changed: the pool keeps this many until a restart; else None.
    pool_kept: int | None = None


def _needs_restart(old: Settings, new: Settings) -> list[str]:
    """The keys whose change only a restart can apply, in the order they are checked."""
    checks = (
        ("database", old.database, new.database),
        ("sink.url", old.sink_url, new.sink_url),
        ("work_dir", old.work_dir, new.work_dir),
        ("daemon.listen", old.daemon.listen, new.daemon.listen),
        # The daemon's identity and lease timing among the daemons sharing the database.
        ("daemon.id", old.daemon.id, new.daemon.id),
        ("daemon.lease", old.daemon.lease, new.daemon.lease),
        ("daemon.lease_renew", old.daemon.lease_renew, new.daemon.lease_renew),
    )
    return [key for key, before, after in checks if before != after]


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """What applying ``new`` over the running ``old`` does.

    Raises :class:`~shopsync.errors.ConfigError` naming the file and the first key that needs a
    restart.
    """
    refused = _needs_restart(old, new)
    if refused:
        raise ConfigError(f"{new.path}: {refused[0]}: changed; restart shopsync to apply this change")
    old_shops = {s.name: s for s in old.shops}
    new_shops = {s.name: s for s in new.shops}
    return ReloadPlan(
        added=tuple(sorted(set(new_shops) - set(old_shops))),
        removed=tuple(sorted(set(old_shops) - set(new_shops))),
        changed=tuple(sorted(n for n in set(old_shops) & set(new_shops) if old_shops[n] != new_shops[n])),
        logging_changed=(new.daemon.log_format, new.daemon.log_level)
        != (old.daemon.log_format, old.daemon.log_level),
        pool_kept=old.sync.max_connections if old.sync.max_connections != new.sync.max_connections else None,
    )


async def read_reload(
    path: Path, env: Mapping[str, str] | None, current: Settings
) -> tuple[Settings, ReloadPlan] | None:
    """The configuration at ``path`` and what applying it over ``current`` does; None when it is
    rejected (logged with its message: the running configuration stays)."""
    try:
        new = await asyncio.to_thread(load_settings, path, env=env)
        plan = plan_reload(current, new)
    except Exception as exc:  # ConfigError, or anything unexpected: never take the daemon down
        if not isinstance(exc, ConfigError):
            log.exception("unexpected error while reloading the configuration")
        log.error("configuration reload rejected, the running configuration stays: %s", exc)
        return None
    if plan.pool_kept is not None:
        log.warning("sync.max_connections changed: the connection pool keeps %d until a restart", plan.pool_kept)
    return new, plan
