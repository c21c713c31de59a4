"""Typed keys of the app's shared state (resources live in cleanup contexts, not globals)."""

import aiohttp
from aiohttp import web
from arq.connections import ArqRedis

from contract.settings import Settings
from contract.storage import Storage

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", ArqRedis)
STORAGE = web.AppKey("storage", Storage)
HTTP = web.AppKey("http", aiohttp.ClientSession)
