"""Looking for credentials where none may be: files, Redis, log text.

A test says what to look for (the tokens the fake GitHub issued, and the shapes of GitHub's
tokens and of JWTs) and where; the scan gathers the hits, each naming the place and which
secret it was by its label only, so that a failure never prints the secret itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis


@dataclass(frozen=True)
class Needle:
    """One secret, or one shape of secret, and what a hit calls it."""

    label: str
    pattern: re.Pattern[bytes]


# Installation (ghs_) and user-to-server (ghu_) tokens; an App JWT's header and claims.
TOKEN_SHAPES = (
    Needle("a GitHub token", re.compile(rb"gh[su]_[A-Za-z0-9]{36}")),
    Needle("a JWT", re.compile(rb"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.")),
)


def issued(tokens: Iterable[str]) -> list[Needle]:
    """Each token as it is, and as the Basic credential git sends it in (x-access-token:…)."""
    needles = []
    for token in tokens:
        basic = base64.b64encode(f"x-access-token:{token}".encode())
        needles.append(Needle(f"token {token[:8]}…", re.compile(re.escape(token.encode()))))
        needles.append(Needle(f"Basic credential of token {token[:8]}…", re.compile(basic)))
    return needles


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below `root` (none if it does not exist); links are not followed."""
    if root.exists():
        yield from (p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


async def redis_values(client: aioredis.Redis, key: bytes) -> list[bytes]:
    """The key and every value stored under it, whatever its type."""
    kind = (await client.type(key)).decode()
    read = {
        "string": ("GET",),
        "list": ("LRANGE", 0, -1),
        "set": ("SMEMBERS",),
        "zset": ("ZRANGE", 0, -1),
        "hash": ("HGETALL",),
        "stream": ("XRANGE", "-", "+"),
    }.get(kind)
    if read is None:
        return [key]
    command, *args = read
    answer = await client.execute_command(command, key, *args)
    return [key, repr(answer).encode()]


@dataclass
class LeakScan:
    """The places searched so far for `needles`, and what was found in them."""

    needles: list[Needle]
    hits: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.needles, "nothing to look for"

    def data(self, where: str, data: bytes | str) -> None:
        """Search `data` (text is searched as UTF-8), naming the place `where`."""
        raw = data.encode() if isinstance(data, str) else data
        self.hits += [f"{where}: {n.label}" for n in self.needles if n.pattern.search(raw)]

    def folders(self, *roots: Path) -> None:
        """Search every file below `roots`, and list them in `files`."""
        for root in roots:
            for path in files_under(root):
                self.files.append(path)
                self.data(str(path), path.read_bytes())

    async def redis(self, client: aioredis.Redis) -> None:
        """Search every key of the database, and every value stored under it."""
        async for key in client.scan_iter():
            for value in await redis_values(client, key):
                self.data(f"Redis {key!r}", value)
