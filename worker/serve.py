"""`gitstats serve`: the whole service on one machine with embedded defaults.

It starts an embedded Valkey when REDIS_URL is unset, the web app (`python -m service`) and one
worker (`python -m worker`) as child processes, the way the Procfile runs them, and
with `--demo PATH` first analyzes that repository into storage so there is data to look at
before any GitHub App is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from contract import layout
from contract.documents import Overview, Status
from contract.embedded_redis import embedded_redis
from contract.registry import CodebaseEntry, write_entry
from contract.settings import Settings, open_configured_storage
from contract.storage import Storage
from worker.engine.pipeline import analyze_codebase
from worker.jobs.org_files import contribution_from_documents, merge_codebase_into_org

# The demo codebase lives in an org of its own that no GitHub installation can have.
DEMO_ORG_ID = 0
DEMO_ORG_LOGIN = "local"
DEMO_CODEBASE_ID = 1


async def publish_demo(settings: Settings, source: str) -> None:
    """Analyze `source` as codebase 1 of the org 'local' and register it like a real one."""
    storage = open_configured_storage(settings)
    try:
        await storage.check_writable()
        name = f"{DEMO_ORG_LOGIN}/{Path(source).resolve().name}"
        result = await analyze_codebase(
            source,
            storage,
            DEMO_CODEBASE_ID,
            settings.work_dir,
            full_name=name,
            email_mode=settings.email_mode,
            bot_authors=tuple(settings.bot_authors),
            trigger="demo",
        )
        now = datetime.now(UTC)
        await write_entry(
            storage,
            CodebaseEntry(
                codebase_id=DEMO_CODEBASE_ID,
                org_id=DEMO_ORG_ID,
                org_login=DEMO_ORG_LOGIN,
                installation_id=0,
                full_name=name,
                clone_url=str(Path(source).resolve()),
                registered_at=now,
                updated_at=now,
            ),
        )
        overview = Overview.model_validate_json(await _read(storage, "overview"))
        status = Status.model_validate_json(await _read(storage, "status"))
        contribution = contribution_from_documents(
            overview,
            status,
            result.contributor_keys,
            result.authored_contributor_keys,
            result.hotspots,
        )
        await merge_codebase_into_org(
            storage, DEMO_ORG_ID, DEMO_ORG_LOGIN, DEMO_CODEBASE_ID, contribution
        )
    finally:
        await storage.close()


async def _read(storage: Storage, name: str) -> bytes:
    stored = await storage.get(layout.codebase_document(DEMO_CODEBASE_ID, name))
    assert stored is not None, name
    return stored.data


def dashboard_link(base: str, admin_token: str | None, demo: bool) -> str:
    """Where to open the dashboard. With a token made for this run, a link that signs in: the
    token rides in the fragment, which the browser never sends, and the page drops it from the
    address as it starts."""
    if admin_token is None:
        return f"{base}/ui/ (sign in with one of ADMIN_TOKENS)"
    fragment = {"token": admin_token}
    if demo:
        fragment["org"] = DEMO_ORG_LOGIN
    return f"{base}/ui/#{urlencode(fragment)}"


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(demo: str | None, port: int | None) -> int:
    # A process manager stops us with SIGTERM: take the children down with us.
    signal.signal(signal.SIGTERM, _stop)
    settings = Settings()
    env = dict(os.environ)
    storage_url = settings.storage_url
    if "://" not in storage_url:
        storage_url = str(Path(storage_url).resolve())
    env["STORAGE_URL"] = storage_url
    env["WORK_DIR"] = str(settings.work_dir)
    if port is not None:
        env["PORT"] = str(port)
    admin_token = None
    if not settings.admin_tokens:
        admin_token = secrets.token_urlsafe(24)
        env["ADMIN_TOKENS"] = admin_token
    settings = settings.model_copy(update={"storage_url": storage_url})
    if demo is not None:
        print(f"analyzing {demo} into {storage_url} ...", flush=True)
        asyncio.run(publish_demo(settings, demo))
    with contextlib.ExitStack() as stack:
        if settings.redis_url is None:
            server = stack.enter_context(embedded_redis(settings.work_dir / "valkey"))
            env["REDIS_URL"] = server.connection_url
            print(f"embedded Valkey at {server.connection_url}", flush=True)
        children = [
            subprocess.Popen([sys.executable, "-m", "service"], env=env),
            subprocess.Popen([sys.executable, "-m", "worker"], env=env),
        ]
        base = f"http://localhost:{env.get('PORT', settings.port)}"
        token = admin_token or "<one of ADMIN_TOKENS>"
        print(
            f"\ngitstats is running: web on {base}, one worker; Ctrl-C stops both.\n"
            f"  dashboard: {dashboard_link(base, admin_token, demo is not None)}\n"
            f"  curl {base}/healthz\n"
            f"  curl -H 'Authorization: Bearer {token}' "
            f"{base}/api/v1/codebases/{DEMO_CODEBASE_ID}/analytics/overview\n"
            f"  curl -H 'Authorization: Bearer {token}' "
            f"{base}/api/v1/orgs/{DEMO_ORG_LOGIN}/analytics/summary\n"
            f"  documents are also plain files under {storage_url}/analytics/\n",
            flush=True,
        )
        try:
            while all(child.poll() is None for child in children):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    children[0].wait(timeout=1)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed else 0
