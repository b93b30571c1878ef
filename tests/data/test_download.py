"""Downloader against an HTTP server on 127.0.0.1 serving files the tests write, with their own checksums."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from malmoi.data import download as dl
from malmoi.data.download import CORPORA, Corpus, RemoteFile, check, digests, download
from malmoi.errors import MalmoiError

REVIEWS = "id\tdocument\tlabel\n1\t재밌어요 강추\t1\n2\t\"감동 실화\"라더니 지루함\t0\n".encode()
CHAT = 'Q,A,label\n"안녕, 반가워",반가워요!,0\n헤어졌어,힘내요,1 \n'.encode()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /truncated/* promises more bytes than it sends, /slow/* answers too late."""

    def __init__(self, *args, requests: list, **kwargs):
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/truncated/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"only a few bytes")
            self.close_connection = True
            return
        if self.path.startswith("/slow/"):
            time.sleep(1.5)
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the slow handler writes to a client that already gave up; that is the point


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves, list of request paths)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    httpd = QuietServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root), requests=requests))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_base():
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def publish(root, path: str, content: bytes):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def git_blob(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def tiny_catalogue(**overrides) -> dict[str, Corpus]:
    """Two files: one checked by git blob id (as NSMC), one by sha256 and size (as the chatbot set)."""
    reviews = RemoteFile("ratings.txt", "owner/reviews/master/ratings.txt", git_blob=git_blob(REVIEWS))
    chat = RemoteFile("chat.csv", "owner/chat/master/chat.csv",
                      sha256=hashlib.sha256(CHAT).hexdigest(), size=len(CHAT))
    files = {"reviews": reviews, "chat": chat}
    for name, changes in overrides.items():
        files[name] = RemoteFile(**{**files[name].__dict__, **changes})
    return {"tiny": Corpus("tiny", "two small files", "CC0", (files["reviews"], files["chat"]))}


@pytest.fixture
def published(server):
    base, root, requests = server
    publish(root, "owner/reviews/master/ratings.txt", REVIEWS)
    publish(root, "owner/chat/master/chat.csv", CHAT)
    return base, root, requests


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- checksums

@pytest.mark.parametrize("content", [b"", b"hello\n", "한국어 문장\n재밌다\n".encode(), bytes(range(256)) * 700])
def test_git_blob_id_matches_git_hash_object(tmp_path, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    got = digests(path)
    assert got["git_blob"] == git_blob(content)
    assert got["sha256"] == hashlib.sha256(content).hexdigest()
    if shutil.which("git"):
        expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
        assert got["git_blob"] == expected.stdout.strip()


def test_known_git_blob_id(tmp_path):
    path = tmp_path / "hello"
    path.write_bytes(b"hello\n")
    assert digests(path)["git_blob"] == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize("remote_changes, failure", [
    ({"size": 3}, "size"),
    ({"sha256": "0" * 64}, "sha256"),
    ({"git_blob": "0" * 40}, "git blob"),
])
def test_check_names_what_failed(tmp_path, remote_changes, failure):
    path = tmp_path / "chat.csv"
    path.write_bytes(CHAT)
    remote = RemoteFile("chat.csv", "x", sha256=hashlib.sha256(CHAT).hexdigest(), size=len(CHAT))
    assert check(path, remote) is None
    assert failure in check(path, RemoteFile(**{**remote.__dict__, **remote_changes}))


def test_a_remote_file_needs_a_checksum():
    with pytest.raises(ValueError):
        RemoteFile("x.txt", "a/x.txt", size=10)


def test_catalogue_points_at_the_public_originals():
    nsmc = {f.name: f for f in CORPORA["nsmc"].files}
    assert set(nsmc) == {"ratings_train.txt", "ratings_test.txt", "ratings.txt"}
    assert f"{dl.DEFAULT_BASE}/{nsmc['ratings_train.txt'].path}" == \
        "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_train.txt"
    assert nsmc["ratings.txt"].git_blob == "9cd603e0d9a3685955fd8994052be3ae143dafdb"
    (chat,) = CORPORA["chatbot"].files
    assert f"{dl.DEFAULT_BASE}/{chat.path}" == \
        "https://raw.githubusercontent.com/songys/Chatbot_data/master/ChatbotData.csv"
    assert (chat.size, chat.sha256) == (889_842, "287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2")


# ---------------------------------------------------------------- downloads

def test_download_writes_checked_files(published, tmp_path):
    base, _, requests = published
    to = tmp_path / "data" / "tiny"
    results = download("tiny", to, base=base, catalogue=tiny_catalogue(), progress=False)
    assert [(r.name, r.status, r.size) for r in results] == [
        ("ratings.txt", "downloaded", len(REVIEWS)), ("chat.csv", "downloaded", len(CHAT))]
    assert (to / "ratings.txt").read_bytes() == REVIEWS and (to / "chat.csv").read_bytes() == CHAT
    assert results[0].url == f"{base}/owner/reviews/master/ratings.txt"
    assert leftovers(to) == ["chat.csv", "ratings.txt"]  # no .part files
    assert requests == ["/owner/reviews/master/ratings.txt", "/owner/chat/master/chat.csv"]


def test_downloaded_files_are_readable(published, tmp_path):
    from malmoi.data.readers import read_labelled, read_pairs

    base, _, _ = published
    download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)
    reviews = read_labelled(tmp_path / "ratings.txt", "document", "label")
    assert reviews.texts[1] == '"감동 실화"라더니 지루함'
    assert read_pairs(tmp_path / "chat.csv", "Q", "A")[0] == ["안녕, 반가워", "헤어졌어"]


def test_download_shows_a_progress_bar(published, tmp_path, capsys):
    base, _, _ = published
    download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=True)
    assert "ratings.txt" in capsys.readouterr().err


def test_present_files_with_good_checksums_are_skipped(published, tmp_path, dead_base):
    base, _, requests = published
    download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)
    # nothing listens at dead_base: the second call must not touch the network at all
    again = download("tiny", tmp_path, base=dead_base, catalogue=tiny_catalogue(), progress=False)
    assert [r.status for r in again] == ["present", "present"]
    assert len(requests) == 2


def test_a_bad_local_copy_is_replaced(published, tmp_path):
    base, _, requests = published
    (tmp_path / "chat.csv").write_bytes(b"Q,A\nold,copy\n")
    (tmp_path / "ratings.txt").write_bytes(REVIEWS)
    results = download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)
    assert [r.status for r in results] == ["present", "replaced"]
    assert (tmp_path / "chat.csv").read_bytes() == CHAT
    assert requests == ["/owner/chat/master/chat.csv"]


@pytest.mark.parametrize("file, changes, words", [
    ("chat", {"sha256": hashlib.sha256(b"other").hexdigest()}, "sha256"),
    ("chat", {"size": len(CHAT) + 1}, "size"),
    ("reviews", {"git_blob": git_blob(b"other")}, "git blob"),
])
def test_checksum_mismatch_raises_and_leaves_nothing(published, tmp_path, file, changes, words):
    base, _, _ = published
    to = tmp_path / "out"
    with pytest.raises(MalmoiError) as e:
        download("tiny", to, base=base, catalogue=tiny_catalogue(**{file: changes}), progress=False)
    assert e.value.code == "E503"
    assert words in e.value.message and "removed" in e.value.message
    name = "chat.csv" if file == "chat" else "ratings.txt"
    assert name not in leftovers(to) and not any(n.endswith(".part") for n in leftovers(to))


def test_mismatch_on_the_first_file_leaves_no_folder(published, tmp_path):
    base, _, _ = published
    to = tmp_path / "new" / "folder"
    with pytest.raises(MalmoiError):
        download("tiny", to, base=base, catalogue=tiny_catalogue(reviews={"git_blob": "0" * 40}), progress=False)
    assert not to.exists()


def test_unreachable_server_is_one_clear_error(tmp_path, dead_base):
    with pytest.raises(MalmoiError) as e:
        download("tiny", tmp_path / "out", base=dead_base, catalogue=tiny_catalogue(), progress=False)
    assert e.value.code == "E501"
    assert f"{dead_base}/owner/reviews/master/ratings.txt" in e.value.message
    assert "network" in e.value.message and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_missing_remote_file_reports_the_http_status(server, tmp_path):
    base, _, _ = server  # serves nothing
    with pytest.raises(MalmoiError) as e:
        download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)
    assert e.value.code == "E502" and "404" in e.value.message
    assert f"{base}/owner/reviews/master/ratings.txt" in e.value.message


def test_truncated_transfer_is_an_error_and_leaves_nothing(server, tmp_path):
    base, _, _ = server
    remote = RemoteFile("cut.txt", "truncated/cut.txt", sha256="0" * 64)
    with pytest.raises(MalmoiError) as e:
        download("cut", tmp_path, base=base, catalogue={"cut": Corpus("cut", "", "", (remote,))}, progress=False)
    assert e.value.code == "E501"
    assert leftovers(tmp_path) == ["www"]


def test_a_server_that_does_not_answer_times_out(server, tmp_path):
    base, root, _ = server
    publish(root, "slow/a.txt", b"late")
    remote = RemoteFile("a.txt", "slow/a.txt", sha256=hashlib.sha256(b"late").hexdigest())
    started = time.monotonic()
    with pytest.raises(MalmoiError) as e:
        download("slow", tmp_path / "out", base=base, catalogue={"slow": Corpus("slow", "", "", (remote,))},
                 timeout=0.3, progress=False)
    assert e.value.code == "E501" and "timed out" in e.value.message
    assert time.monotonic() - started < 1.4


def test_base_comes_from_the_environment(published, tmp_path, monkeypatch):
    base, _, requests = published
    monkeypatch.setenv("MALMOI_DOWNLOAD_BASE", base + "/")
    download("tiny", tmp_path, catalogue=tiny_catalogue(), progress=False)
    assert len(requests) == 2


def test_base_argument_wins_over_the_environment(published, tmp_path, monkeypatch, dead_base):
    base, _, _ = published
    monkeypatch.setenv("MALMOI_DOWNLOAD_BASE", dead_base)
    assert len(download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)) == 2


def test_a_local_mirror_through_file_urls(tmp_path):
    mirror = tmp_path / "mirror"
    publish(mirror, "owner/reviews/master/ratings.txt", REVIEWS)
    publish(mirror, "owner/chat/master/chat.csv", CHAT)
    results = download("tiny", tmp_path / "out", base=mirror.as_uri(), catalogue=tiny_catalogue(), progress=False)
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert (tmp_path / "out" / "chat.csv").read_bytes() == CHAT


def test_default_base_is_github(monkeypatch):
    monkeypatch.delenv("MALMOI_DOWNLOAD_BASE", raising=False)
    assert dl.resolve_base() == "https://raw.githubusercontent.com"


@pytest.mark.parametrize("base", ["ftp://mirror.example", "127.0.0.1:8000"])
def test_bad_base_url(tmp_path, base):
    with pytest.raises(MalmoiError) as e:
        download("tiny", tmp_path, base=base, catalogue=tiny_catalogue(), progress=False)
    assert e.value.code == "E243"


def test_unknown_corpus_lists_the_known_ones(tmp_path):
    with pytest.raises(MalmoiError) as e:
        download("kowiki", tmp_path / "out")
    assert e.value.code == "E240" and "nsmc, chatbot" in e.value.message
    assert not (tmp_path / "out").exists()


def test_target_that_is_a_file(tmp_path, published):
    base, _, _ = published
    (tmp_path / "taken").write_text("x")
    with pytest.raises(MalmoiError) as e:
        download("tiny", tmp_path / "taken", base=base, catalogue=tiny_catalogue(), progress=False)
    assert e.value.code == "E241"


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("argv, code", [
    (["data", "download", "kowiki"], "E240"),
    (["data", "download", "nsmc", "--base", "gopher://x"], "E243"),
])
def test_cli_errors_exit_2_with_one_line(argv, code, cli, tmp_path):
    status, out, err = cli(*argv + ["--to", str(tmp_path / "d")])
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and code in err


def test_cli_offline_is_one_line(cli, tmp_path, dead_base):
    status, _, err = cli(*["data", "download", "chatbot", "--to", str(tmp_path / "d"), "--base", dead_base,
                              "--timeout", "2"])
    assert status == 2 and err.count("\n") == 1
    assert "E501" in err and f"{dead_base}/songys/Chatbot_data/master/ChatbotData.csv" in err


def test_cli_downloads_and_reports(published, tmp_path, cli, monkeypatch):
    base, _, _ = published
    monkeypatch.setitem(CORPORA, "tiny", tiny_catalogue()["tiny"])
    to = tmp_path / "got"
    status, out, _ = cli("data", "download", "tiny", "--to", to, "--base", base, "--json")
    assert status == 0
    report = json.loads(out)
    assert [(f["name"], f["status"]) for f in report["files"]] == [("ratings.txt", "downloaded"),
                                                                   ("chat.csv", "downloaded")]
    assert report["files"][1]["path"] == str(to / "chat.csv")
    status, out, _ = cli("data", "download", "tiny", "--to", to, "--base", base)
    assert status == 0 and out.count("present") == 2 and "licence: CC0" in out


def test_cli_lists_the_bundled_samples(cli):
    status, out, _ = cli("data", "samples", "--json")
    paths = json.loads(out)
    assert status == 0 and set(paths) == {"reviews", "chatbot", "corpus", "entities"}
    assert paths["reviews"].endswith("reviews.tsv")
