"""Secret settings read from files: `CAREPATH_<NAME>_FILE` holds the path of a file whose
content is the value of `CAREPATH_<NAME>`.

This is how Docker and Kubernetes hand secrets to a container (a file under
`/run/secrets/` or a mounted Secret volume), so a secret never has to sit in the
process environment, in `docker inspect` or in a manifest. Every setting typed
`SecretStr` (or a list of them) can be given this way; which ones they are is read from
the settings model, so a secret added later is covered without a change here.

One trailing line break is removed (files written by editors and `echo` end with one);
anything else is the value as written. A list setting's file holds the same JSON as its
variable would. Setting both `CAREPATH_<NAME>` and `CAREPATH_<NAME>_FILE`, a file that
cannot be read, and an empty file are refused with one line naming the variable: a
deployment must not start on a secret other than the one it was given.

`CAREPATH_PAYLOAD_KEYS_FILE` predates this and is a setting of its own (the keys
document's path, read by `workers.payload_codec`); it follows the same rule.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from workers.errors import StartupError

FILE_SUFFIX = "_FILE"


def _mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


def secret_field_names(settings_cls: type[BaseSettings]) -> tuple[str, ...]:
    """The settings that hold secrets: every field typed `SecretStr` or a list of them."""
    return tuple(
        name
        for name, field in settings_cls.model_fields.items()
        if _mentions_secret(field.annotation)
    )


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def read_secret_file(variable: str, path_text: str) -> str:
    """The secret held by the file `variable` names; one line naming the fault otherwise."""
    if not path_text.strip():
        raise StartupError(f"{variable} is set but empty: give the path of the secret's file")
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StartupError(f"{variable}: the file {path} does not exist") from None
    except IsADirectoryError:
        raise StartupError(f"{variable}: {path} is a directory, not a file") from None
    except PermissionError:
        raise StartupError(
            f"{variable}: the file {path} cannot be read by this user (uid {os.getuid()}); "
            "give it read access to the file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StartupError(f"{variable}: the file {path} cannot be read ({reason})") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise StartupError(f"{variable}: the file {path} is empty")
    return value


def _lookup(environ: Mapping[str, str], name: str) -> str | None:
    """`name` in the environment, case-insensitively as the settings read variables."""
    if name in environ:
        return environ[name]
    folded = name.lower()
    return next((v for k, v in environ.items() if k.lower() == folded), None)


class SecretFilesSource(PydanticBaseSettingsSource):
    """Values of secret settings from the files `CAREPATH_<NAME>_FILE` variables name."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        self._environ = os.environ if environ is None else environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every secret setting at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_field_names(self.settings_cls):
            variable = env_name(self.settings_cls, name)
            file_variable = variable + FILE_SUFFIX
            path_text = _lookup(self._environ, file_variable)
            if path_text is None:
                continue
            if _lookup(self._environ, variable) is not None:
                raise StartupError(f"both {variable} and {file_variable} are set: keep one of them")
            if name + FILE_SUFFIX.lower() in self.settings_cls.model_fields:
                continue  # a setting of its own (CAREPATH_PAYLOAD_KEYS_FILE), read by its user
            value = read_secret_file(file_variable, path_text)
            field = self.settings_cls.model_fields[name]
            if self.field_is_complex(field):
                try:
                    values[name] = json.loads(value)
                except ValueError:
                    raise StartupError(
                        f"{file_variable}: the file {path_text} must hold a JSON list, as "
                        f"{variable} would"
                    ) from None
            else:
                values[name] = value
        return values
