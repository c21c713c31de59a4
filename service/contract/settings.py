"""Settings from the environment, built once at start-up and passed in (never read at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.contract.documents import EmailMode


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
    admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    email_mode: EmailMode = EmailMode.HASH
    port: int = 8080
    access_log: bool = False
    work_dir: Path = Field(default_factory=_default_work_dir)
    worker_concurrency: int = Field(default=3, ge=1)
    # The read API never loads a stored document larger than this into memory.
    api_max_document_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    @field_validator("admin_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value
