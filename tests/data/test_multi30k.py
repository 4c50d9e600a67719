"""Multi30k download: served from a local HTTP server; nothing but loopback is ever contacted."""

import functools
import gzip
import hashlib
import http.server
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest

from aiayn.data import multi30k
from aiayn.data.multi30k import (
    DEFAULT_BASE_URL,
    LANGUAGES,
    PUBLISHED,
    SPLITS,
    download_multi30k,
)
from aiayn.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MULTI30K = SHARED / "data" / "multi30k"
ALL_NAMES = [f"{s}.{lang}.gz" for s in SPLITS for lang in LANGUAGES]

needs_shared = pytest.mark.skipif(
    not all((MULTI30K / name).is_file() for name in ALL_NAMES),
    reason=f"the published Multi30k files are not in {MULTI30K} (the shared/ folder next to the "
    "repository); these tests serve them from a local HTTP server",
)


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any test that looks up or connects to anything but this machine; bypass proxies."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    attempts = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if address[0] not in _LOOPBACK:
            attempts.append(address)
            raise OSError(f"test blocked a connection to {address!r}")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in _LOOPBACK:  # no DNS query leaves the machine either
            attempts.append(host)
            raise socket.gaierror(f"test blocked a lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
    assert attempts == [], f"a test tried to reach the network: {attempts}"


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving one directory; records the paths requested."""

    def __init__(self, directory: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format, *args):  # keep test output clean
                pass

        handler = functools.partial(Handler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for the serving loop to notice.
        serve = functools.partial(self.httpd.serve_forever, poll_interval=0.01)
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve():
    """serve(directory) → a running _Server whose `url` is the base URL of its files."""
    servers = []

    def start(directory: Path) -> _Server:
        servers.append(_Server(directory))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(directory: Path) -> list[str]:
    """Every entry in `directory`, hidden temporary files included."""
    return sorted(p.name for p in directory.iterdir())


def _copy_of_published(tmp_path: Path, names=ALL_NAMES) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    for name in names:
        shutil.copyfile(MULTI30K / name, served / name)
    return served


def test_default_url_is_the_published_location():
    assert DEFAULT_BASE_URL == "https://github.com/multi30k/dataset/raw/master/data/task1/raw"


@needs_shared
def test_embedded_checksums_match_the_published_files():
    assert set(PUBLISHED) == set(ALL_NAMES)
    for name in ALL_NAMES:
        path = MULTI30K / name
        assert PUBLISHED[name] == (path.stat().st_size, _sha256(path)), name


@needs_shared
def test_downloads_all_files_then_skips_them(tmp_path, serve, capsys):
    server = serve(MULTI30K)
    out = tmp_path / "out" / "multi30k"
    paths = download_multi30k(out, base_url=server.url, progress=False)

    assert [p.name for p in paths] == ALL_NAMES
    assert _files(out) == sorted(ALL_NAMES)
    for path in paths:
        assert path.read_bytes() == (MULTI30K / path.name).read_bytes()
    with gzip.open(out / "val.de.gz", "rt", encoding="utf-8") as f:
        assert sum(1 for _ in f) == 1014
    assert len(server.requests) == 9

    # A second run finds every file present and verified, and asks the server for nothing.
    again = download_multi30k(out, base_url=server.url + "/", progress=False)
    assert again == paths
    assert len(server.requests) == 9
    assert capsys.readouterr().err == ""  # progress=False shows no bar


@needs_shared
def test_progress_bar_goes_to_stderr(tmp_path, serve, capsys):
    server = serve(MULTI30K)
    download_multi30k(tmp_path, base_url=server.url, languages=["de"], splits=["val"])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "val.de.gz" in captured.err


@needs_shared
def test_a_damaged_existing_file_is_downloaded_again(tmp_path, serve):
    server = serve(MULTI30K)
    out = tmp_path / "out"
    out.mkdir()
    (out / "val.en.gz").write_bytes(b"not the published file")
    (path,) = download_multi30k(out, server.url, languages=["en"], splits=["val"], progress=False)
    assert _sha256(path) == PUBLISHED["val.en.gz"].sha256
    assert server.requests == ["/val.en.gz"]


@needs_shared
@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "append"])
def test_a_corrupt_download_raises_and_leaves_no_file(tmp_path, serve, damage):
    served = _copy_of_published(tmp_path, ["val.de.gz"])
    data = bytearray((served / "val.de.gz").read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[-100:]
    else:
        data += b"<html>a mirror's error page</html>" * 10
    (served / "val.de.gz").write_bytes(bytes(data))
    server = serve(served)
    out = tmp_path / "out"

    with pytest.raises(DataError) as info:
        download_multi30k(out, server.url, languages=["de"], splits=["val"], progress=False)
    message = str(info.value)
    assert f"{server.url}/val.de.gz" in message
    assert "is not the published val.de.gz" in message and "--base-url" in message
    assert ("more than the 24,681 bytes" in message) == (damage == "append")
    assert _files(out) == []  # no partial or temporary file


@needs_shared
def test_earlier_verified_files_survive_a_later_failure(tmp_path, serve):
    served = _copy_of_published(tmp_path, ["val.en.gz"])  # val.de.gz is missing: 404
    server = serve(served)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"val\.de\.gz"):
        download_multi30k(out, server.url, languages=["en", "de"], splits=["val"], progress=False)
    assert _files(out) == ["val.en.gz"]


@needs_shared
def test_an_unwritable_destination_raises_data_error(tmp_path, serve):
    server = serve(MULTI30K)
    (tmp_path / "val.en.gz").mkdir()  # a directory where the file should go
    with pytest.raises(DataError, match=r"cannot write .*val\.en\.gz"):
        download_multi30k(tmp_path, server.url, ["en"], ["val"], progress=False)
    assert _files(tmp_path) == ["val.en.gz"]  # the directory, untouched; no temporary file


def test_404_gives_a_clear_error(tmp_path, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    server = serve(empty)
    out = tmp_path / "out"
    with pytest.raises(DataError) as info:
        download_multi30k(out, server.url, languages=["fr"], splits=["test_2016_flickr"])
    message = str(info.value)
    assert f"{server.url}/test_2016_flickr.fr.gz" in message
    assert "HTTP 404" in message and "--base-url" in message
    assert _files(out) == []


def test_refused_connection_gives_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=re.escape(f"http://127.0.0.1:{port}/val.en.gz")):
        download_multi30k(tmp_path, f"http://127.0.0.1:{port}", ["en"], ["val"], progress=False)
    assert _files(tmp_path) == []


def test_a_silent_server_times_out(tmp_path):
    with socket.socket() as listener:
        # The kernel accepts the connection into the backlog; nobody ever answers.
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(DataError, match=r"val\.en\.gz.*timed out|no data for"):
            download_multi30k(tmp_path, url, ["en"], ["val"], progress=False, timeout=0.2)
    assert _files(tmp_path) == []


def test_a_connection_cut_short_raises_and_leaves_no_file(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def answer_half():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                size = PUBLISHED["val.en.gz"].size
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                conn.sendall(b"\x1f\x8b" + b"x" * 998)  # then hang up

        thread = threading.Thread(target=answer_half, daemon=True)
        thread.start()
        with pytest.raises(DataError, match=re.escape(f"{url}/val.en.gz")):
            download_multi30k(tmp_path, url, ["en"], ["val"], progress=False, timeout=5)
        thread.join()
    assert _files(tmp_path) == []


@needs_shared
def test_file_urls_work_for_local_copies(tmp_path):
    out = tmp_path / "out"
    (path,) = download_multi30k(
        out, MULTI30K.as_uri(), languages=["fr"], splits=["val"], progress=False
    )
    assert path.read_bytes() == (MULTI30K / "val.fr.gz").read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"languages": ["en", "cs"]}, "unknown Multi30k language 'cs'"),
        ({"splits": ["test_2017_flickr"]}, "unknown Multi30k split 'test_2017_flickr'"),
        ({"base_url": "ftp://example.org/raw"}, "must start with https://"),
    ],
)
def test_bad_arguments_raise_config_error_before_any_download(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        download_multi30k(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_single_string_is_one_language_not_letters():
    assert multi30k._requested_names("de", "val") == ["val.de.gz"]


def test_the_guard_blocks_the_real_site(tmp_path, loopback_only):
    # Proves the autouse guard works: the default URL is refused before any packet leaves.
    with pytest.raises(DataError, match=re.escape(DEFAULT_BASE_URL)):
        download_multi30k(tmp_path, languages=["en"], splits=["val"], progress=False)
    assert loopback_only == ["github.com"]
    loopback_only.clear()


@needs_shared
def test_cli_downloads_from_a_mirror(tmp_path, serve, capsys):
    """`aiayn data multi30k --out DIR --base-url URL` as a user runs it."""
    from aiayn.cli import main

    server = serve(MULTI30K)
    out = tmp_path / "m30k"
    assert main(["data", "multi30k", "--out", str(out), "--base-url", server.url,
                 "--languages", "en,de", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out.split()
    assert sorted(p.rsplit("/", 1)[-1] for p in printed) == sorted(
        f"{split}.{lang}.gz"
        for split in ("train", "val", "test_2016_flickr")
        for lang in ["en", "de"]
    )
    assert (out / "train.de.gz").read_bytes() == (MULTI30K / "train.de.gz").read_bytes()
