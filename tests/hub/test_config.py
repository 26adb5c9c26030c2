"""siyu.toml: env:/file: values, per-plugin validation, and every problem named at once."""

import textwrap

import pytest

from hub.config import find_config, load_settings, parse_settings, read_toml
from hub.errors import ConfigError
from hub.plugins import load_plugins

KEY = "phone-key-for-tests-0123456789"


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def write(tmp_path, text):
    path = tmp_path / "siyu.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_config_resolves_env_and_file_values(tmp_path, host, monkeypatch):
    monkeypatch.setenv("WEIBO_SECRET", "s3cr3t-value")
    (tmp_path / "key.txt").write_text(KEY + "\n")
    path = write(tmp_path, """
        [database]
        url = "sqlite:///data/siyu.db"
        [security]
        phone_key = "file:key.txt"
        [[accounts]]
        platform = "weibo"
        id = "hq"
        name = "HQ"
        base_url = "http://127.0.0.1:9000"
        app_key = "k1"
        app_secret = "env:WEIBO_SECRET"
    """)
    settings = load_settings(host, path)
    account = settings.account("weibo", "hq")
    assert account.options.app_secret.get_secret_value() == "s3cr3t-value"
    assert account.base_url == "http://127.0.0.1:9000"
    # a relative SQLite path is relative to the config file, not to the working directory
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/data/siyu.db"
    assert len(settings.phones.hash("+8613800138000")) == 64
    for text in (repr(settings), repr(account), repr(account.options), str(account.options)):
        assert "s3cr3t-value" not in text and KEY not in text


def test_every_bad_key_is_named_in_one_error(tmp_path, host, monkeypatch):
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    path = write(tmp_path, f"""
        colour = "blue"
        [database]
        url = "not a url"
        [security]
        phone_key = "{KEY}"
        [[accounts]]
        platform = "weibo"
        id = "hq"
        app_key = "k"
        app_secret = "env:MISSING_SECRET"
        [[accounts]]
        platform = "weibo"
        id = "hq"
        app_key = "k"
        app_secret = "fine"
        app_sekret = "typo"
        [[accounts]]
        platform = "myspace"
        id = "x"
        [[accounts]]
        platform = "wecom"
        id = "y"
        corp_id = "wx"
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(host, path)
    keys = {key for key, _ in info.value.problems}
    assert {
        "colour",
        "accounts[0].app_secret",
        "accounts[1].id",
        "accounts[1].app_sekret",
        "accounts[2].platform",
        "accounts[3].secret",
    } <= keys, keys
    problems = dict(info.value.problems)
    assert problems["accounts[0].app_secret"] == "environment variable MISSING_SECRET is not set"
    assert "duplicate account weibo:hq" in problems["accounts[1].id"]
    assert "unknown platform 'myspace'" in problems["accounts[2].platform"]


def test_bad_database_url_and_missing_phone_key_are_named(tmp_path, host, monkeypatch):
    monkeypatch.delenv("SIYU_PHONE_KEY", raising=False)
    path = write(tmp_path, """
        [database]
        url = "::nonsense::"
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(host, path)
    keys = {key for key, _ in info.value.problems}
    assert keys == {"database.url", "security"}


def test_phone_key_may_come_from_the_environment(tmp_path, host, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", KEY)
    settings = parse_settings({}, host, path=tmp_path / "siyu.toml")
    assert settings.database_url.endswith("/siyu.db")


def test_a_bad_encryption_key_is_named(host, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", KEY)
    with pytest.raises(ConfigError, match="phone_encryption_key is not a Fernet key"):
        parse_settings({"security": {"phone_encryption_key": "short"}}, host)


def test_secrets_never_appear_in_errors(tmp_path, host):
    path = write(tmp_path, f"""
        [security]
        phone_key = "{KEY}"
        [[accounts]]
        platform = "weibo"
        id = "hq"
        app_key = ["list", "not", "string"]
        app_secret = {{ nested = "TOPSECRET-123" }}
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(host, path)
    assert "TOPSECRET-123" not in str(info.value) and KEY not in str(info.value)
    assert {"accounts[0].app_key", "accounts[0].app_secret"} <= {k for k, _ in info.value.problems}


def test_malformed_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, """
        [database
        url = 1
    """)
    with pytest.raises(ConfigError, match=r"siyu.toml is not valid TOML.*line 2"):
        read_toml(path)


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="run `siyu init`"):
        read_toml(tmp_path / "nope.toml")


def test_a_missing_file_reference_is_named(tmp_path, host):
    with pytest.raises(ConfigError) as info:
        parse_settings({"security": {"phone_key": "file:absent.key"}}, host, path=tmp_path / "siyu.toml")
    assert info.value.problems[0][0] == "security.phone_key"
    assert "cannot read file" in info.value.problems[0][1]


def test_config_is_found_by_flag_then_env_then_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv("SIYU_CONFIG", str(tmp_path / "env.toml"))
    assert find_config(tmp_path / "flag.toml").name == "flag.toml"
    assert find_config().name == "env.toml"
    monkeypatch.delenv("SIYU_CONFIG")
    assert str(find_config()) == "siyu.toml"


def test_the_ledger_section_configures_the_default_rules(host, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", KEY)
    fresh = load_plugins()
    settings = parse_settings({"ledger": {"points_per_yuan": 3, "level_thresholds": [10, 20]}}, fresh)
    assert settings.ledger.level_thresholds == [10, 20]
    from schemas import Order

    order = Order(platform="p", account_id="a", order_id="o", buyer_uid="b", amount_fen=1999, status="paid")
    assert fresh.hook.earn_points(order=order) == 57
    with pytest.raises(ConfigError) as info:
        parse_settings({"ledger": {"level_thresholds": [20, 10], "points_per_yuan": -1}}, fresh)
    assert {k for k, _ in info.value.problems} == {"ledger.level_thresholds", "ledger.points_per_yuan"}


def test_a_rate_limit_needs_positive_calls_and_period(tmp_path, host):
    path = write(tmp_path, f"""
        [database]
        url = "sqlite:///x.db"
        [security]
        phone_key = "{KEY}"
        [[accounts]]
        platform = "wecom"
        id = "hq"
        corp_id = "ww1"
        secret = "s"
        rate_limits = {{ "*" = [0, 60], "/cgi-bin/externalcontact/get" = [100, -1] }}
    """)
    with pytest.raises(ConfigError) as info:
        load_settings(host, path)
    problems = dict(info.value.problems)
    assert problems.keys() == {"accounts[0].rate_limits.*[0]", "accounts[0].rate_limits./cgi-bin/externalcontact/get[1]"}
    assert all("greater than 0" in text for text in problems.values())


def test_the_phone_vault_hashes_as_hmac_sha256_and_survives_a_copy():
    import copy
    import hashlib
    import hmac
    import pickle

    from hub.people.phones import PhoneVault

    vault = PhoneVault(KEY)
    number = "+8613800138000"
    expected = hmac.new(KEY.encode(), number.encode(), hashlib.sha256).hexdigest()  # RFC 2104, as stored
    assert vault.hash(number) == vault.hash(number) == expected
    assert vault.hash("+8613900139000") != expected
    for again in (copy.deepcopy(vault), pickle.loads(pickle.dumps(vault))):
        assert again.hash(number) == expected
