"""What every ``dfs-client`` command shares (click): running a command, errors, output,
the options and where requests go.

Each command wraps one ``asyncio.run`` over the ``Client`` library (``run``). Output is text
for people (dfs.client.cli_output), or with ``--json`` one JSON object per line on stdout and
nothing else (``emit``). Where requests go: dfs.client.profiles (``target_options``). Errors:
one ``Error: <message>`` line on stderr, exit with the error class's code (the table:
``dfs-client --help``, docs/cli.md)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.shell_completion import CompletionItem

from dfs.client import profiles
from dfs.client.cli_main import import_quietly, quietly
from dfs.client.cli_output import printable
from dfs.client.profiles import Target
from dfs.errors import DfsError
from dfs.protocol import API_RETRY_SECONDS_MAX, DEFAULT_CONCURRENCY, DEFAULT_UPLOAD_CONCURRENCY
from dfs.transport.tls import import_aiohttp

if TYPE_CHECKING:
    from dfs.client.library import Client
    from dfs.client.local_files import Skipped

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

NOT_STORED = 10
PARTIAL = 23  # some files skipped, the rest transferred (rsync's "partial transfer")
INTERRUPTED = 130


class Interrupted(Exception):
    """Ctrl-C during a command; the message tells how to carry on."""


def fail(message: str, code: int) -> NoReturn:
    """One ``Error:`` line (escaped: messages may quote names) and exit ``code``."""
    click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(code)


def load_config() -> profiles.Config:
    try:
        return profiles.load(profiles.config_path())
    except DfsError as exc:
        fail(exc.message, exc.exit_code)


def run(coro: Coroutine[Any, Any, T], resumable: bool = False) -> T:
    box: list[T] = []

    async def main() -> None:
        # the result leaves through ``box``, not as the main task's: ``asyncio.run`` ends by
        # ``signal.getsignal(SIGINT)``, which formats its handler, a partial holding the
        # task, with ``repr`` (``signal._int_to_enum``'s failed ``Handlers(...)``), and the
        # repr of a done task is its result's: a whole transfer summary (~0.05 s for a
        # folder of 7,733 files)
        box.append(await coro)

    try:
        asyncio.run(main())
        return box[0]
    except KeyboardInterrupt:
        raise Interrupted(
            "run the same command again to resume where it stopped" if resumable else ""
        ) from None
    except DfsError as exc:
        fail(exc.message, exc.exit_code)
    except BrokenPipeError:  # the reader (e.g. `| head`) has seen enough: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # as a shell reports death by SIGPIPE
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)


def emit(as_json: bool, obj: dict[str, Any], text: str) -> None:
    click.echo(line_of(as_json, obj, text))


def line_of(as_json: bool, obj: dict[str, Any], text: str) -> str:
    """What ``emit`` prints for one result, without printing it."""
    return json.dumps(obj, sort_keys=True) if as_json else text


def emit_lines(lines: Sequence[str]) -> None:
    """Many results' lines in one write: a restore of thousands of files printed one
    ``click.echo`` each (a write and a terminal check per line) spent more CPU on its
    report than on some of its files."""
    if lines:
        click.echo("\n".join(lines))


class UrlCommand(click.Command):
    """A command whose first argument may be the API URL (see dfs.client.profiles): such an
    argument is handed to the hidden --api-url option before click parses the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for p in self.params
            if isinstance(p, click.Option) and not p.is_flag and not p.count
            for name in (*p.opts, *p.secondary_opts)
        }
        return super().parse_args(ctx, profiles.move_api_url(args, takes_value))


class UrlGroup(click.Group):
    command_class = UrlCommand


def complete_profiles(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    try:
        names = profiles.load(profiles.config_path()).profiles
    except DfsError:
        return []
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def target_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--api-url (also the first argument), --profile and --token, resolved into one
    ``target`` argument (a usage error exits 2 with one line)."""

    @functools.wraps(f)
    def wrapper(
        *args: Any, api_url: str | None, profile: str | None, token: str | None, **kwargs: Any
    ) -> Any:
        try:
            target = profiles.resolve(api_url, profile, token, os.environ, load_config())
        except DfsError as exc:
            fail(exc.message, exc.exit_code)
        return f(*args, target=target, **kwargs)

    options = [
        click.option("--api-url", default=None, hidden=True),
        click.option(
            "--profile",
            "-p",
            envvar="DFS_PROFILE",
            default=None,
            shell_complete=complete_profiles,
            help="Use this profile's URL and token (dfs-client config ls).",
        ),
        click.option(
            "--token",
            default=None,
            help="API token (else DFS_TOKEN, else the profile's token).",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


RETRY_ENV = "DFS_API_RETRY_SECONDS"
"""How long a run keeps sending a request the API did not answer (``dfs.transport.api_client``;
default ``API_RETRY_SECONDS``, 0 for never)."""


def api_retry_seconds(env: Mapping[str, str]) -> float | None:
    """``RETRY_ENV`` as seconds (None when unset); a value that is not one exits 2."""
    text = env.get(RETRY_ENV)
    if text is None or not text.strip():
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= API_RETRY_SECONDS_MAX:  # also refuses nan
        most = f"{API_RETRY_SECONDS_MAX:.0f}"
        fail(f"{RETRY_ENV} must be a number of seconds from 0 to {most}, not {text!r}", 2)
    return seconds


def make_client(target: Target, **kwargs: Any) -> Client:
    # the library (aiohttp: most of a start's CPU) only for a command that sends requests:
    # --help, config and shell completion import no command's client
    retry = api_retry_seconds(os.environ)
    # first: aiohttp without its import-time CA loads (~a fifth of its import)
    quietly(import_aiohttp)
    import_quietly("dfs.client.library")
    from dfs.client.library import Client

    return Client(target.url, token=target.token, api_retry_seconds=retry, **kwargs)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _concurrency(default: int) -> Callable[[F], F]:
    """``--concurrency`` with its default for the command."""
    return click.option(
        "--concurrency",
        default=default,
        show_default=True,
        type=click.IntRange(1, 256),
        help="Chunks in flight at once.",
    )


concurrency_option = _concurrency(DEFAULT_CONCURRENCY)
upload_concurrency_option = _concurrency(DEFAULT_UPLOAD_CONCURRENCY)  # its sends: 16
proxy_option = click.option(
    "--proxy", is_flag=True, help="Send and fetch chunks through the API (nodes unreachable)."
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar (bars show only on a terminal anyway)."
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def skipped_lines(skipped: Sequence[Skipped]) -> None:
    """A ``Skipped:`` line on stderr per file left out."""
    for s in skipped:
        click.echo(f"Skipped: {printable(s.what)}: {printable(s.reason)}", err=True)
