from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agentiam.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = load_settings(environ={})
    assert settings.data_dir == Path("agentiam-data")
    assert settings.database_url == "sqlite:///agentiam-data/agentiam.db"
    assert settings.issuer == "http://127.0.0.1:8800"
    assert settings.key_rotation_overlap == 3600 + 30
    assert settings.signing_alg == "ES256"
    assert settings.kek_file is None


def test_precedence_file_env_flags(tmp_path):
    config = tmp_path / "a.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\nleeway = 10\n')
    env = {"AGENTIAM_PORT": "9100", "AGENTIAM_LEEWAY": "20"}
    settings = load_settings(config_file=config, environ=env, overrides={"leeway": 5})
    assert settings.host == "0.0.0.0"
    assert settings.port == 9100
    assert settings.leeway == 5
    assert settings.issuer == "http://0.0.0.0:9100"


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "a.toml"
    config.write_text('signing_alg = "EdDSA"\n')
    settings = load_settings(environ={"AGENTIAM_CONFIG": str(config)})
    assert settings.signing_alg == "EdDSA"


def test_none_overrides_ignored():
    assert load_settings(environ={}, overrides={"port": None}).port == 8800


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1", "unknown setting 'colour' (value 1)"),
        ("port = 0", "invalid value 0 for setting 'port'"),
        ('port = "80"', "invalid value '80' for setting 'port'"),
        ("port = true", "invalid value True for setting 'port'"),
        ('signing_alg = "RS256"', "invalid value 'RS256' for setting 'signing_alg'"),
        ('trust_domain = "Bad_Domain!"', "invalid value 'Bad_Domain!'"),
        ('issuer = "http://x/"', "invalid value 'http://x/' for setting 'issuer'"),
        (
            "access_token_ttl = 7200",
            "invalid value 7200 for setting 'access_token_ttl'",
        ),
        ('database_url = "mysql://x"', "invalid value 'mysql://x'"),
        ('log_level = "loud"', "invalid value 'loud' for setting 'log_level'"),
    ],
    ids=lambda value: re.sub(r"\W+", "-", value)[:30],
)
def test_file_rejects_bad_value(tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, environ={})
    assert message in str(info.value)


def test_environment_rejects_unknown_key():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"AGENTIAM_PROT": "1"})
    assert "unknown setting 'prot'" in str(info.value)
    assert "environment variable AGENTIAM_PROT" in str(info.value)


def test_environment_rejects_bad_integer():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"AGENTIAM_SVID_TTL": "five"})
    assert "invalid value 'five' for setting 'svid_ttl'" in str(info.value)


@pytest.mark.parametrize("port", [65536, 99999])
def test_port_above_16_bits_rejected(tmp_path, port):
    config = tmp_path / "port.toml"
    config.write_text(f"port = {port}\n")

    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, environ={})

    assert str(info.value) == (
        f"invalid value {port} for setting 'port' in config file '{config}': "
        "expected an integer from 1 to 65535"
    )


def test_port_flag_above_16_bits_rejected():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, overrides={"port": 99999})

    assert "invalid value 99999 for setting 'port'" in str(info.value)


def test_highest_port_accepted():
    assert load_settings(environ={"AGENTIAM_PORT": "65535"}).port == 65535


def test_kek_variable_is_not_a_setting():
    settings = load_settings(environ={"AGENTIAM_KEK": "x"})
    assert not hasattr(settings, "kek")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_invalid_toml(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config, environ={})


def test_explicit_overlap_kept():
    settings = load_settings(environ={"AGENTIAM_KEY_ROTATION_OVERLAP": "100"})
    assert settings.key_rotation_overlap == 100


def test_settings_frozen():
    settings = load_settings(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_full_config_equals_defaults():
    full = load_settings(config_file=REPO / "config" / "agentiam.full.toml", environ={})
    assert full == load_settings(environ={})


def test_full_config_lists_every_setting():
    text = (REPO / "config" / "agentiam.full.toml").read_text()
    listed = set(re.findall(r"^#? ?([a-z_]+) = ", text, flags=re.MULTILINE))
    assert listed == {field.name for field in dataclasses.fields(Settings)}


def test_minimal_config_loads():
    settings = load_settings(
        config_file=REPO / "config" / "agentiam.minimal.toml", environ={}
    )
    assert settings.port == 8800
