"""The settings of the commands that read them (servers, database, audit, users)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.errors import StartupError

if TYPE_CHECKING:
    from workers.settings import Settings


def settings(data_dir: str | None = None) -> Settings:
    """The settings from the environment, `--data-dir` winning over CAREPATH_DATA_DIR."""
    from pydantic import ValidationError

    from workers.settings import Settings

    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = "CAREPATH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise StartupError(f"setting {name} is invalid: {first['msg']}") from None


def served(data_dir: str | None = None) -> Settings:
    """The settings of a command that runs servers, with logging configured."""
    from workers.logging import configure_logging

    chosen = settings(data_dir)
    configure_logging(chosen.log_format, chosen.log_level)
    return chosen
