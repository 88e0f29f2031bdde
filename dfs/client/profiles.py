"""Where the CLI sends a request: profiles, ``DFS_API_URL`` and the API-URL argument.

A profile names an API URL and, optionally, its token (as ``mc alias`` or rclone remotes do).
Profiles live in one TOML file, ``DFS_CONFIG`` or ``~/.config/dfs/config.toml``, written with
mode 0600 because it holds tokens::

    default = "local"            # the profile used when nothing else names one
    token = "dfs_..."            # optional: a token for any URL (the file's original format)

    [profiles.local]
    url = "http://127.0.0.1:8080"
    token = "dfs_..."

The rule every command follows: a first argument with a scheme, or of the form
``host:port``, is the API URL; otherwise the URL comes from ``--profile``, ``DFS_API_URL`` or
the default profile. Remote names always contain ``/`` and file ids are bare UUIDs, so neither
is ever taken for a URL. No click here: the CLI (dfs.client.cli) turns errors into exit codes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dfs.errors import InvalidRequest

DEFAULT_CONFIG = Path("~/.config/dfs/config.toml")
SCHEMES = ("http", "https")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}(/\S*)?")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def looks_like_api_url(text: str) -> bool:
    """A scheme (``http://``, also ``ftp://`` so that it is refused by name) or ``host:port``."""
    return "://" in text or _HOST_PORT.fullmatch(text) is not None


def normalize_api_url(text: str) -> str:
    """``host:port`` becomes ``http://host:port``; only http and https are accepted."""
    if "://" not in text:
        if _HOST_PORT.fullmatch(text) is None:
            raise InvalidRequest(f"not an API URL: {text!r} (e.g. http://127.0.0.1:8080)")
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidRequest(
            f"unsupported URL scheme {parts.scheme!r} in {text}: use http or https"
        )
    if not parts.hostname:
        raise InvalidRequest(f"no host in API URL {text}")
    return text.rstrip("/")


def move_api_url(args: Sequence[str], value_options: set[str]) -> list[str]:
    """``args`` with the first positional argument turned into ``--api-url URL`` when it looks
    like an API URL. ``value_options`` are the options that take a value (so their value is
    not mistaken for a positional argument)."""
    out = list(args)
    i = 0
    while i < len(out):
        arg = out[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("-") and arg != "-":
            i += 2 if arg in value_options else 1
            continue
        break
    if i < len(out) and looks_like_api_url(out[i]):
        url = out.pop(i)
        return ["--api-url", url, *out]
    return out


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    token: str | None = None


@dataclass
class Config:
    """The parsed config file; ``extra`` keeps other top-level strings (e.g. ``token``)."""

    path: Path
    profiles: dict[str, Profile] = field(default_factory=dict)
    default: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def by_url(self, url: str) -> Profile | None:
        """The profile for ``url`` (the default one first if several share it)."""
        ordered = sorted(self.profiles.values(), key=lambda p: p.name != self.default)
        return next((p for p in ordered if p.url == url), None)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("DFS_CONFIG") or str(DEFAULT_CONFIG)).expanduser()


def load(path: Path) -> Config:
    """The config at ``path``; an empty one if the file does not exist."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, once tomllib is loaded)
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise InvalidRequest(f"cannot read config file {path}: {exc}") from None
    # loaded only when there is a file to parse: many runs (a URL and DFS_TOKEN) have none
    import tomllib

    with f:
        try:
            raw = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidRequest(f"cannot read config file {path}: {exc}") from None
    profiles = {}
    for name, body in (raw.get("profiles") or {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise InvalidRequest(f"config file {path}: profile {name!r} has no url")
        token = body.get("token")
        profiles[name] = Profile(name, body["url"], str(token) if token else None)
    default = raw.get("default")
    extra = {k: str(v) for k, v in raw.items() if k not in ("profiles", "default")}
    return Config(path, profiles, str(default) if default else None, extra)


def _toml_str(value: str) -> str:
    # a JSON string of printable text is a valid TOML basic string
    return json.dumps(value)


def save(config: Config) -> None:
    """Write ``config`` atomically with mode 0600 (its folder 0700 if created)."""
    lines = []
    if config.default:
        lines.append(f"default = {_toml_str(config.default)}")
    lines += [f"{k} = {_toml_str(v)}" for k, v in sorted(config.extra.items())]
    for p in sorted(config.profiles.values(), key=lambda p: p.name):
        lines += ["", f"[profiles.{p.name}]", f"url = {_toml_str(p.url)}"]
        if p.token:
            lines.append(f"token = {_toml_str(p.token)}")
    config.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=config.path.parent, prefix=".config.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp creates it 0600
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, config.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_profile(config: Config, name: str, url: str, token: str | None) -> Profile:
    """Add or replace profile ``name``; the first profile becomes the default."""
    if _PROFILE_NAME.fullmatch(name) is None:
        raise InvalidRequest(f"profile name {name!r}: use letters, digits, '-' and '_'")
    profile = Profile(name, normalize_api_url(url), token or None)
    config.profiles[name] = profile
    if config.default is None or config.default not in config.profiles:
        config.default = name
    return profile


def remove_profile(config: Config, name: str) -> None:
    if config.profiles.pop(name, None) is None:
        raise InvalidRequest(f"no profile named {name!r}")
    if config.default == name:
        config.default = None


def use_profile(config: Config, name: str) -> None:
    if name not in config.profiles:
        raise InvalidRequest(f"no profile named {name!r}")
    config.default = name


@dataclass(frozen=True)
class Target:
    """The API a command talks to, the token it sends, and the profile they came from."""

    url: str
    token: str | None
    profile: str | None = None


def resolve(
    api_url: str | None,
    profile: str | None,
    token: str | None,
    env: Mapping[str, str],
    config: Config,
) -> Target:
    """The URL: ``api_url`` (the first argument), else ``profile``, else ``DFS_API_URL``, else
    the default profile. The token: ``token`` (--token), else the token of a profile named
    with --profile, else ``DFS_TOKEN``, else the token of the profile in use (the one whose
    URL is being used), else the file's top-level ``token``."""
    named = None
    if profile:
        named = config.profiles.get(profile)
        if named is None:
            raise InvalidRequest(f"no profile named {profile!r} (see: dfs-client config ls)")
    if api_url:
        url = normalize_api_url(api_url)
    elif named is not None:
        url = named.url
    elif env.get("DFS_API_URL"):
        url = normalize_api_url(env["DFS_API_URL"])
    elif config.default in config.profiles:
        url = config.profiles[config.default].url
    else:
        raise InvalidRequest(
            "no API URL: give one first (e.g. http://127.0.0.1:8080), or use --profile, "
            "DFS_API_URL or a default profile (dfs-client config set NAME URL)"
        )
    in_use = named if named is not None and named.url == url else config.by_url(url)
    chosen = [
        token,
        named.token if named is not None else None,
        env.get("DFS_TOKEN"),
        in_use.token if in_use is not None else None,
        config.extra.get("token"),
    ]
    return Target(url, next((t for t in chosen if t), None), in_use.name if in_use else None)
