"""Secret settings from files: CAREPATH_<NAME>_FILE, as Docker and Kubernetes mount them."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.errors import StartupError
from workers.secret_files import secret_field_names
from workers.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in secret_field_names(Settings):
        monkeypatch.delenv(f"CAREPATH_{name.upper()}", raising=False)
        monkeypatch.delenv(f"CAREPATH_{name.upper()}_FILE", raising=False)


def _secret_file(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_every_secret_setting_is_known_as_one() -> None:
    assert set(secret_field_names(Settings)) >= {
        "database_url",
        "database_owner_url",
        "chain_key",
        "checkpoint_key",
        "payload_keys",
        "notify_webhook_secret",
        "notify_webhook_previous_secrets",
        "smtp_password",
        "token",
    }


@pytest.mark.parametrize(
    "name",
    [n for n in secret_field_names(Settings) if n not in {"payload_keys"}],
)
def test_given_a_secret_file_when_settings_are_read_then_the_setting_holds_its_content(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    is_list = name == "notify_webhook_previous_secrets"
    text = '["whsec_old"]\n' if is_list else "s3cret value\n"
    monkeypatch.setenv(f"CAREPATH_{name.upper()}_FILE", str(_secret_file(tmp_path, text)))
    value = getattr(Settings(), name)
    if is_list:
        assert [v.get_secret_value() for v in value] == ["whsec_old"]
    else:
        assert value.get_secret_value() == "s3cret value"


def test_given_a_file_ending_in_crlf_then_only_the_line_break_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_CHAIN_KEY_FILE", str(_secret_file(tmp_path, " key \r\n")))
    chain_key = Settings().chain_key
    assert chain_key is not None
    assert chain_key.get_secret_value() == " key "


def test_given_both_the_variable_and_its_file_then_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_SMTP_PASSWORD", "inline")
    monkeypatch.setenv("CAREPATH_SMTP_PASSWORD_FILE", str(_secret_file(tmp_path, "file")))
    with pytest.raises(
        StartupError, match="both CAREPATH_SMTP_PASSWORD and CAREPATH_SMTP_PASSWORD_FILE"
    ):
        Settings()


def test_given_inline_payload_keys_and_the_keys_file_then_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_PAYLOAD_KEYS", "{}")
    monkeypatch.setenv("CAREPATH_PAYLOAD_KEYS_FILE", str(_secret_file(tmp_path, "{}")))
    with pytest.raises(StartupError, match="both CAREPATH_PAYLOAD_KEYS and"):
        Settings()


def test_given_the_payload_keys_file_alone_then_it_stays_the_path_of_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _secret_file(tmp_path, "{}")
    monkeypatch.setenv("CAREPATH_PAYLOAD_KEYS_FILE", str(path))
    settings = Settings()
    assert settings.payload_keys is None
    assert settings.payload_keys_file == path


def test_given_a_missing_file_then_the_error_names_the_variable_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("CAREPATH_CHAIN_KEY_FILE", str(missing))
    with pytest.raises(StartupError, match=f"CAREPATH_CHAIN_KEY_FILE: the file {missing} does not"):
        Settings()


def test_given_a_directory_then_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL_FILE", str(tmp_path))
    with pytest.raises(StartupError, match="is a directory"):
        Settings()


def test_given_an_unreadable_file_then_the_error_says_it_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _secret_file(tmp_path, "x")
    monkeypatch.setenv("CAREPATH_CHECKPOINT_KEY_FILE", str(path))
    # A file this process may not read; as root every file is readable, so an invalid
    # UTF-8 file stands in for "cannot be read" there.
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(StartupError, match=r"CAREPATH_CHECKPOINT_KEY_FILE: the file .* cannot be"):
        Settings()


def test_given_an_empty_file_then_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_CHAIN_KEY_FILE", str(_secret_file(tmp_path, "\n")))
    with pytest.raises(StartupError, match="is empty"):
        Settings()


def test_given_a_list_file_that_is_not_json_then_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _secret_file(tmp_path, "whsec_old")
    monkeypatch.setenv("CAREPATH_NOTIFY_WEBHOOK_PREVIOUS_SECRETS_FILE", str(path))
    with pytest.raises(StartupError, match="must hold a JSON list"):
        Settings()


def test_given_an_empty_file_variable_then_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREPATH_CHAIN_KEY_FILE", "")
    with pytest.raises(StartupError, match="CAREPATH_CHAIN_KEY_FILE is set but empty"):
        Settings()


def test_given_a_secret_file_when_the_cli_starts_then_the_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    monkeypatch.setenv("CAREPATH_DATABASE_URL_FILE", str(tmp_path / "nope"))
    assert main(["db", "migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("carepath: error: CAREPATH_DATABASE_URL_FILE: the file")
    assert err.count("\n") == 1
