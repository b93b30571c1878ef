"""Real, checksummed downloaders for public Korean corpora: the one piece of network code.

Each file is streamed into a hidden ``.part`` file next to its destination, checked against the
catalogue's checksums, and only then renamed into place, so an interrupted or corrupted transfer
never leaves a file that looks complete. Files already present with good checksums are skipped.

The base URL (``https://raw.githubusercontent.com``) can be replaced by an argument or by the
``MALMOI_DOWNLOAD_BASE`` environment variable, for a mirror or a test server on loopback.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from malmoi.errors import MalmoiError

DEFAULT_BASE = "https://raw.githubusercontent.com"
BASE_ENV = "MALMOI_DOWNLOAD_BASE"
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a corpus and the checks its bytes must pass (at least one)."""

    name: str
    """File name written into the target folder."""
    path: str
    """Path under the base URL, e.g. ``e9t/nsmc/master/ratings.txt``."""
    git_blob: str | None = None
    """Git blob id: sha1 of ``b"blob <size>\\0"`` + content, as ``git hash-object`` prints it."""
    sha256: str | None = None
    """sha256 of the content, hex."""
    size: int | None = None
    """Exact size in bytes, checked first because it is free."""

    def __post_init__(self):
        if not (self.git_blob or self.sha256):
            raise ValueError(f"{self.name}: a remote file needs a git blob id or a sha256")


@dataclass(frozen=True)
class Corpus:
    """A public corpus: what it is, its licence, its files, and how to use it once downloaded."""

    name: str
    """Name on the command line (``malmoi data download NAME``)."""
    description: str
    """One line saying what the corpus holds."""
    licence: str
    """The corpus' own licence."""
    files: tuple[RemoteFile, ...]
    """The files to fetch."""
    example: str = ""
    """A malmoi command that uses the files; ``{to}`` becomes the target folder."""


CORPORA: dict[str, Corpus] = {
    "nsmc": Corpus(
        name="nsmc",
        description="Naver sentiment movie corpus: 200,000 reviews labelled 0/1, "
                    "tab-separated with header id, document, label",
        licence="CC0 1.0 (github.com/e9t/nsmc)",
        files=(
            RemoteFile("ratings_train.txt", "e9t/nsmc/master/ratings_train.txt",
                       git_blob="ac0dba272895dc1d0b3dd5f11afbeaeb7abe7876"),
            RemoteFile("ratings_test.txt", "e9t/nsmc/master/ratings_test.txt",
                       git_blob="b6cfcd8cd1557bcd9bf06617b0e429ed73e9a367"),
            RemoteFile("ratings.txt", "e9t/nsmc/master/ratings.txt",
                       git_blob="9cd603e0d9a3685955fd8994052be3ae143dafdb"),
        ),
        example="malmoi train classify --data {to}/ratings_train.txt --valid {to}/ratings_test.txt "
                "--text document --label label --out runs/nsmc",
    ),
    "chatbot": Corpus(
        name="chatbot",
        description="Korean chatbot data: about 11,800 question/answer pairs, CSV with header Q, A, label "
                    "(0 everyday, 1 break-up, 2 love)",
        licence="MIT (github.com/songys/Chatbot_data)",
        files=(
            RemoteFile("ChatbotData.csv", "songys/Chatbot_data/master/ChatbotData.csv",
                       git_blob="4cc2bfa9a124991dc5ca80f5da1786f4162f46e1",
                       sha256="287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2",
                       size=889_842),
        ),
        example="malmoi train seq2seq --data {to}/ChatbotData.csv --source Q --target A --out runs/chat",
    ),
}


@dataclass
class Fetched:
    """What happened to one file of a download."""

    name: str
    """File name."""
    path: Path
    """Where the file now lies."""
    url: str
    """Where it came from (or would have come from, when already present)."""
    status: str
    """``downloaded``, ``present`` (already there and checked: skipped) or ``replaced`` (a bad copy was)."""
    size: int
    """Size in bytes."""

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


# ---------------------------------------------------------------- checksums

def digests(path: str | os.PathLike) -> dict[str, str]:
    """sha256 and git blob id of a file, in one pass over its bytes."""
    size = os.path.getsize(path)
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
    return {"sha256": sha256.hexdigest(), "git_blob": blob.hexdigest()}


def check(path: str | os.PathLike, remote: RemoteFile) -> str | None:
    """None when ``path`` passes every check of ``remote``, else what failed, in words."""
    size = os.path.getsize(path)
    if remote.size is not None and size != remote.size:
        return f"size {size:,} bytes, expected {remote.size:,}"
    got = digests(path)
    for kind in ("sha256", "git_blob"):
        want = getattr(remote, kind)
        if want and got[kind] != want.lower():
            return f"{kind.replace('_', ' ')} {got[kind]}, expected {want}"
    return None


# ---------------------------------------------------------------- transfer

def resolve_base(base: str | None = None) -> str:
    """The base URL: the argument, else ``$MALMOI_DOWNLOAD_BASE``, else GitHub's raw file host."""
    base = base or os.environ.get(BASE_ENV) or DEFAULT_BASE
    if not base.startswith(("http://", "https://", "file://")):
        raise MalmoiError("E243", f"download base {base!r} must start with http://, https:// or file://")
    return base.rstrip("/")


def _network_error(url: str, error: BaseException) -> MalmoiError:
    reason = getattr(error, "reason", None) or error
    return MalmoiError("E501", f"cannot download {url}: {reason}; check the network connection "
                               f"(or set {BASE_ENV} to a mirror)")


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "malmoi"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise MalmoiError("E502", f"{url} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _network_error(url, e) from None


def _chunks(response: BinaryIO, url: str) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(CHUNK)
        except (OSError, http.client.HTTPException) as e:
            raise _network_error(url, e) from None
        if not chunk:
            return
        yield chunk


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def fetch(url: str, dest: Path, remote: RemoteFile, *, timeout: float = 30.0, progress=None) -> int:
    """Stream ``url`` to ``dest`` through a temp file; rename it into place only if it passes ``remote``'s checks.

    Returns the size. A failed check removes the temp file and raises ``E503``; network faults raise
    ``E501``/``E502``; nothing is left behind either way."""
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    received = 0
    try:
        with _open(url, timeout) as response:
            total = getattr(response, "length", None)  # None for file:// and chunked replies
            task = None
            if progress is not None:
                progress.start()  # only now: a bar started before a failed connection prints a stray line
                task = progress.add_task(dest.name, total=total)
            with open(part, "wb") as out:
                for chunk in _chunks(response, url):
                    out.write(chunk)
                    received += len(chunk)
                    if task is not None:
                        progress.update(task, advance=len(chunk))
        if total is not None and received != total:
            raise MalmoiError("E501", f"cannot download {url}: the connection closed after "
                                      f"{received:,} of {total:,} bytes")
        failed = check(part, remote)
        if failed:
            raise MalmoiError("E503", f"{url} failed its checksum ({failed}); the download was removed. "
                                      "The file may have changed upstream or the transfer was corrupted")
        os.replace(part, dest)
    except OSError as e:  # the network's OSErrors are already MalmoiErrors; this is the disk
        raise MalmoiError("E241", f"cannot write {dest}: {e.strerror or e}") from None
    finally:
        part.unlink(missing_ok=True)
    return received


def download(corpus: str, to: str | os.PathLike, *, base: str | None = None,
             catalogue: Mapping[str, Corpus] | None = None, timeout: float = 30.0,
             progress: bool = True) -> list[Fetched]:
    """Download every file of ``corpus`` into the folder ``to``, checked; skip files already there and good.

    ``catalogue`` replaces :data:`CORPORA` (tests use their own files and checksums)."""
    catalogue = CORPORA if catalogue is None else catalogue
    if corpus not in catalogue:
        raise MalmoiError("E240", f"unknown corpus {corpus!r}; choose one of: {', '.join(catalogue)}")
    spec = catalogue[corpus]
    base = resolve_base(base)
    folder = Path(to)
    if folder.exists() and not folder.is_dir():
        raise MalmoiError("E241", f"{folder} is a file; --to needs a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MalmoiError("E241", f"cannot create {folder}: {e.strerror or e}") from None

    results = []
    bar = _progress(progress)
    try:
        for remote in spec.files:
            url = f"{base}/{remote.path}"
            dest = folder / remote.name
            status = "downloaded"
            if dest.is_file():
                if check(dest, remote) is None:
                    results.append(Fetched(remote.name, dest, url, "present", dest.stat().st_size))
                    continue
                status = "replaced"
            size = fetch(url, dest, remote, timeout=timeout, progress=bar)
            results.append(Fetched(remote.name, dest, url, status, size))
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed first download leaves no empty folder behind
        raise
    finally:
        if bar.live.is_started:
            bar.stop()
    return results
