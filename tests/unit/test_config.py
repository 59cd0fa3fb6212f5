"""Configuration: defaults < TOML < environment < flags; mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from taube.server.config import Config, ConfigError, load_config


def test_defaults(tmp_path: Path) -> None:
    config = load_config(None, environ={})
    assert config == Config()
    assert config.sqlite_path == Path("data/taube.db")
    assert config.max_payload_bytes == 65536


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "taube.toml"
    toml.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[limits]\nmax_group_members = 50\n')
    config = load_config(toml, port=9100, environ={"TAUBE_HOST": "::1", "TAUBE_PORT": "9050"})
    assert (config.port, config.host, config.max_group_members) == (9100, "::1", 50)
    config = load_config(toml, environ={"TAUBE_PORT": "9050"})
    assert config.port == 9050


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", "unknown setting server.prot"),
        ("[nope]\nx = 1\n", "unknown section [nope]"),
        ("[server]\nport = 'eighty'\n", "setting 'port': expected int"),
        ("[server]\nport = 0\n", "port 0 is out of range"),
        ("[store]\nstore = 'mysql://x'\n", "use sqlite:///PATH or postgresql://"),
        ("[bus]\nbus = 'kafka://x'\n", "use local or nats://"),
        (
            "[store]\nstore = 'postgresql://u@h/d'\n[bus]\nbus = 'nats://h:4222'\n",
            "give them all the same [status] signing_key",
        ),
        ("[store]\ndurability = 'SOMETIMES'\n", "durability must be"),
        ("[store]\nack_delay_ms = -1\n", "ack_delay_ms must not be negative"),
        ("[limits]\nmax_frame_bytes = 10\n", "max_frame_bytes"),
        ("[limits]\nkey_fetches_per_min = 0\n", "key_fetches_per_min must be positive"),
        ("[limits]\nmax_one_time_prekeys = 0\n", "max_one_time_prekeys must be positive"),
        ("[limits]\nmin_one_time_prekeys = -1\n", "min_one_time_prekeys must not be negative"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "taube.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(toml, environ={})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml", environ={})


def test_key_settings(tmp_path: Path) -> None:
    config = load_config(None, environ={})
    assert (
        config.key_fetches_per_min,
        config.min_one_time_prekeys,
        config.max_one_time_prekeys,
    ) == (120.0, 20, 1000)
    toml = tmp_path / "taube.toml"
    toml.write_text(
        "[limits]\nkey_fetches_per_min = 30\nmin_one_time_prekeys = 0\nmax_one_time_prekeys = 500\n"
    )
    config = load_config(toml, environ={"TAUBE_KEY_FETCHES_PER_MIN": "45"})
    assert (
        config.key_fetches_per_min,
        config.min_one_time_prekeys,
        config.max_one_time_prekeys,
    ) == (45.0, 0, 500)


def test_blob_settings(tmp_path: Path) -> None:
    config = load_config(None, environ={})
    assert (config.blob_max_bytes, config.blob_max_chunk_bytes) == (100 * 1024**2, 8 * 1024**2)
    assert (config.blob_retention_days, config.blob_upload_retention_days) == (30.0, 1.0)
    assert config.blob_path == Path("data/blobs")
    toml = tmp_path / "taube.toml"
    toml.write_text('[blobs]\nmax_bytes = 1000\nretention_days = 2.5\ndir = "/srv/blobs"\n')
    config = load_config(toml, environ={"TAUBE_BLOB_MAX_CHUNK_BYTES": "500"})
    assert (config.blob_max_bytes, config.blob_max_chunk_bytes) == (1000, 500)
    assert (config.blob_retention_days, config.blob_path) == (2.5, Path("/srv/blobs"))
    toml.write_text("[blobs]\nmax_bytes = 0\n")
    with pytest.raises(ConfigError, match="blob_max_bytes must be positive"):
        load_config(toml, environ={})
    toml.write_text("[blobs]\nblob_max_bytes = 5\n")
    with pytest.raises(ConfigError, match=r"unknown setting blobs\.blob_max_bytes"):
        load_config(toml, environ={})
