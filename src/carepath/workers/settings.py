"""CarePath's settings, read once per process from `CAREPATH_*` environment variables.

Leaving `temporal_address` or `database_url` unset means "embedded": `carepath up`
starts that server itself, with its data in `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SEARCH_ATTRIBUTES: dict[str, str] = {
    "CarePathwayStage": "Keyword",
    "ProgramId": "Keyword",
    "PrimaryClinician": "Keyword",
    "EscalationLevel": "Int",
    "NextDeadline": "Datetime",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREPATH_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".carepath"),
        description="Where the embedded servers keep their data (CAREPATH_DATA_DIR, --data-dir).",
    )

    # Temporal
    temporal_address: str | None = Field(
        default=None,
        description="host:port of an external Temporal frontend; unset starts the dev server.",
    )
    temporal_namespace: str = "default"
    temporal_task_queue: str = "carepath-episodes"
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    temporal_ui: bool = True
    temporal_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to keep trying an external Temporal address."
    )

    # PostgreSQL
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL of an external database; unset starts an embedded server.",
    )
    postgres_port: int = Field(default=55432, ge=1, le=65535)
    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the `carepath episode ...` commands reach the API.",
    )

    # Programs and logging
    programs_dir: Path | None = Field(
        default=None, description="A directory of program definitions; unset uses the built-ins."
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"
