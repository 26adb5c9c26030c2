"""The weibo adapter: no capabilities, only options that the hub validates."""

from __future__ import annotations

from pydantic import SecretStr

import hub

__all__ = ["WeiboAdapter"]


class WeiboAdapter(hub.Adapter):
    """Declares no capabilities: it only shows how a plugin's options are validated."""

    platform = "weibo"
    default_base_url = "https://api.weibo.example"

    class Config(hub.AdapterConfig):
        app_key: str
        app_secret: SecretStr
