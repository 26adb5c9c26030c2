"""Plugin discovery and the register_platforms contract: every broken plugin is named."""

import subprocess
import sys

import pytest

import hub
from hub.plugins import load_plugins

BUILT_INS = {"douyin", "wecom", "alipay", "kuaishou", "xiaohongshu"}


def plugin_registering(*adapters):
    class Plugin:
        @hub.hookimpl
        def register_platforms(self, register):
            for adapter in adapters:
                register(adapter)

    return Plugin()


class Toy(hub.Adapter):
    platform = "toy"


def test_built_ins_load_through_entry_points_and_declare_no_fake_capabilities():
    host = load_plugins()
    assert BUILT_INS <= set(host.platforms)
    for name in BUILT_INS:
        info = host.platforms[name]
        assert info.distribution == "siyu-hub" and info.plugin == name
        assert info.adapter.default_base_url.startswith("https://")


def test_the_third_party_plugin_is_found_like_a_built_in():
    host = load_plugins()
    assert "weibo" in host.platforms, "install tests/siyu-weibo (the README's test command does)"
    assert host.platforms["weibo"].distribution == "siyu-weibo"


def test_two_adapters_for_one_platform_name_the_second_plugin():
    class Again(hub.Adapter):
        platform = "wecom"

    with pytest.raises(hub.PluginError, match=r"plugin 'undo-dup'.*'wecom' is already registered by plugin 'wecom'"):
        load_plugins(extra=[(plugin_registering(Again), "undo-dup")])


def test_registering_something_that_is_not_an_adapter_is_refused():
    with pytest.raises(hub.PluginError, match="undo-bad.*Adapter subclass"):
        load_plugins(extra=[(plugin_registering(object), "undo-bad")])


def test_an_adapter_without_a_platform_name_is_refused():
    class Nameless(hub.Adapter):
        pass

    with pytest.raises(hub.PluginError, match="Nameless does not declare a platform"):
        load_plugins(extra=[(plugin_registering(Nameless), "undo-nameless")])


def test_declaring_a_capability_without_its_method_is_refused():
    class Pretender(hub.Adapter):
        platform = "pretender"
        capabilities = frozenset({hub.Capability.FANS, hub.Capability.WEBHOOKS})

        async def fetch_fans(self, account, cursor):
            return hub.Page(items=[])

    with pytest.raises(hub.PluginError, match="without implementing parse_webhook"):
        load_plugins(extra=[(plugin_registering(Pretender), "undo-pretender")])


def test_a_misspelled_hook_names_the_plugin_and_the_hook():
    class Typo:
        @hub.hookimpl
        def register_platfroms(self, register):
            pass

    with pytest.raises(hub.PluginError, match="undo-typo.*register_platfroms"):
        load_plugins(extra=[(Typo(), "undo-typo")])


def test_unknown_platform_lists_what_is_installed():
    host = load_plugins()
    with pytest.raises(hub.UnknownPlatform, match="unknown platform 'myspace'.*douyin"):
        host.adapter_class("myspace")


def test_siyu_load_plugins_pins_the_set(monkeypatch):
    monkeypatch.setenv("SIYU_LOAD_PLUGINS", "wecom, siyu-weibo")
    assert set(load_plugins().platforms) == {"wecom", "weibo"}
    monkeypatch.setenv("SIYU_LOAD_PLUGINS", "")
    assert load_plugins().platforms == {}
    monkeypatch.setenv("SIYU_LOAD_PLUGINS", "wecom,myspace")
    with pytest.raises(hub.PluginError, match="not installed: myspace"):
        load_plugins()


def test_siyu_trace_plugins_prints_hook_calls():
    code = "from hub.plugins import load_plugins; load_plugins()"
    env = {"SIYU_TRACE_PLUGINS": "1", "PATH": ""}
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stderr
    assert "calling register_platforms" in err and "register_platforms returned" in err
