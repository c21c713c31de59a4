"""Every key gitstats keeps in Redis, in one place (arq's own keys are arq's).

Redis holds only what can be rebuilt: delivery ids, generation counters, locks and retry
bookkeeping. Losing any of it costs at most a repeated run, never a wrong document.
"""

PREFIX = "gitstats:"


def delivery_key(delivery_id: str) -> str:
    """A webhook delivery already received (remembered for `DELIVERY_TTL_S`)."""
    return f"{PREFIX}delivery:{delivery_id}"


def generation_key(codebase_id: int) -> str:
    """Bumped by every push; a sync that started before the bump runs again."""
    return f"{PREFIX}generation:{codebase_id}"


def queued_sync_key(codebase_id: int) -> str:
    """The id of the codebase's sync job that is queued and has not started: pushes join it."""
    return f"{PREFIX}queued-sync:{codebase_id}"


def synced_key(codebase_id: int) -> str:
    """The highest generation a finished run has covered."""
    return f"{PREFIX}synced:{codebase_id}"


def failures_key(codebase_id: int) -> str:
    """Transient failures in a row, for the backoff (lock waits do not count)."""
    return f"{PREFIX}sync-failures:{codebase_id}"


def purged_key(codebase_id: int) -> str:
    """A purged codebase: late jobs of its own leave it purged."""
    return f"{PREFIX}purged:{codebase_id}"


def retry_backoff_key(codebase_id: int) -> str:
    """Reconcile's record of re-syncing a codebase whose branches stay where a sync failed: the
    refs it tried, how often, and when it may try again."""
    return f"{PREFIX}resync-backoff:{codebase_id}"


def codebase_lock_key(codebase_id: int) -> str:
    """Held by the one job that syncs or purges the codebase."""
    return f"{PREFIX}lock:codebase:{codebase_id}"


def installation_lock_key(installation_id: int) -> str:
    """Held by the one lifecycle job (register, suspend, purge) acting on the installation."""
    return f"{PREFIX}lock:installation:{installation_id}"


def worker_health_key(host: str) -> str:
    """arq's health record of the worker on `host`, which `arq --check` reads on that host."""
    return f"{PREFIX}worker-health:{host}"
