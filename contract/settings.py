"""Settings from the environment, built once at start-up and passed in (never read at import)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract.documents import EmailMode
from contract.storage import S3Credentials, Storage, open_storage

if TYPE_CHECKING:
    from arq.connections import RedisSettings


# GitHub does not enforce a length; a shorter secret could be guessed, so it counts as unset.
MIN_WEBHOOK_SECRET_LENGTH = 16


def _default_work_dir() -> Path:
    return Path.home() / ".cache" / "gitstats"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    github_app_id: str | None = None
    github_private_key: SecretStr | None = None
    github_private_key_path: Path | None = None
    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    redis_url: SecretStr | None = None
    storage_url: str = "data"
    s3_endpoint_url: str | None = None
    # The AWS SDK's own variable names; unset, the SDK's usual chain (config files, roles) applies.
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_default_region: str | None = None
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    email_mode: EmailMode = EmailMode.HASH
    # Globs of names or emails whose commits are a bot's (DESIGN.md definition 10), besides
    # GitHub's `[bot]` suffix; comma-separated, case-insensitive.
    bot_authors: Annotated[list[str], NoDecode] = Field(default_factory=list)
    port: int = 8080
    access_log: bool = False
    # Log lines as text or as one JSON object each (with delivery, codebase and job ids).
    log_format: Literal["text", "json"] = "text"
    # The worker's own GET /metrics (Prometheus); 0: none.
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    # GitHub gives up on a delivery after 10 s: a body slower than that is not GitHub's.
    webhook_read_timeout_s: float = Field(default=10.0, gt=0)
    work_dir: Path = Field(default_factory=_default_work_dir)
    worker_concurrency: int = Field(default=3, ge=1)
    # How long a dead worker's lock on a codebase outlives it (a live worker renews it).
    lock_ttl_s: float = Field(default=60.0, ge=1.0)
    # A job that failed in a way that may pass waits this long before its first retry, twice as
    # long before each next one (10 minutes at most), and never less than GitHub asked.
    retry_base_s: float = Field(default=5.0, gt=0)
    # How long a fetch (or a listing of branches) waits to connect to the git server, and then
    # for each read or write: libgit2 would wait forever for a server that stops answering.
    fetch_connect_timeout_s: float = Field(default=15.0, gt=0)
    fetch_io_timeout_s: float = Field(default=120.0, gt=0)
    # The read API never loads a stored document larger than this into memory.
    api_max_document_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    @field_validator("github_webhook_secret")
    @classmethod
    def _unset_if_guessable(cls, value: SecretStr | None) -> SecretStr | None:
        # Fail closed: an empty secret would let a body signed with the empty key through.
        if value is None or len(value.get_secret_value().strip()) < MIN_WEBHOOK_SECRET_LENGTH:
            return None
        return value

    def missing_for_web(self) -> list[str]:
        """What the web process lacks and what that costs, one line each (logged at start-up)."""
        problems = []
        if self.github_webhook_secret is None:
            problems.append(
                f"GITHUB_WEBHOOK_SECRET is unset or shorter than {MIN_WEBHOOK_SECRET_LENGTH} "
                "characters: every webhook delivery is refused (503)"
            )
        if not self.admin_tokens:
            problems.append("ADMIN_TOKENS is unset: only GitHub users' tokens can read the API")
        return problems

    def missing_for_worker(self) -> list[str]:
        """What a worker lacks and what that costs, one line each (logged at start-up)."""
        if not self.github_app_id:
            return ["GITHUB_APP_ID is unset: no job can read GitHub or fetch from it"]
        if self.github_private_key is None and self.github_private_key_path is None:
            return [
                "GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH are unset: no job can read "
                "GitHub or fetch from it"
            ]
        return []

    @field_validator("admin_tokens", "bot_authors", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return split_commas(value)
        return value


def split_commas(text: str) -> list[str]:
    """The comma-separated items of `text`, stripped, blanks dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def open_configured_storage(settings: Settings) -> Storage:
    """The storage STORAGE_URL names, with S3_ENDPOINT_URL and the AWS credentials given."""
    secret, token = settings.aws_secret_access_key, settings.aws_session_token
    credentials = S3Credentials(
        access_key_id=settings.aws_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        session_token=token.get_secret_value() if token else None,
        region=settings.aws_default_region,
    )
    return open_storage(settings.storage_url, settings.s3_endpoint_url, credentials)


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings for REDIS_URL; RuntimeError if it is unset or not a Redis URL."""
    # Imported here so that `gitstats analyze`, which needs no Redis, never loads arq.
    import dataclasses

    from arq.connections import RedisSettings
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set: jobs are queued in Redis")
    try:
        dsn = RedisSettings.from_dsn(settings.redis_url.get_secret_value())
    except (RuntimeError, ValueError):
        # Not the URL itself in the message: it may hold a password.
        raise RuntimeError(
            "REDIS_URL is not a Redis URL (redis://, rediss:// or unix://)"
        ) from None
    # After Redis restarts, every pooled connection is dead: a command that meets one is sent
    # again on a new connection instead of failing (twice, after 0.1 s and 0.2 s).
    return dataclasses.replace(
        dsn,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        retry_on_error=[ConnectionError, TimeoutError],
    )
