"""Tiny Shakespeare download: served from a local HTTP server; only loopback is ever contacted."""

import functools
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from aiayn.cli import main
from aiayn.data.shakespeare import DEFAULT_BASE_URL, PUBLISHED, download_shakespeare
from aiayn.errors import ConfigError, DataError

from conftest import SHARED

SOURCE = SHARED / "data" / "tinyshakespeare" / "input.txt.gz"

pytestmark = pytest.mark.skipif(
    not SOURCE.is_file(),
    reason=f"Tiny Shakespeare is not in {SOURCE.parent} (the shared/ folder next to the "
    "repository); these tests serve a decompressed copy of it from a local HTTP server",
)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail a test that connects to anything but this machine; bypass proxies."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to connect to {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def served(tmp_path):
    """A folder holding the published input.txt (decompressed from shared/)."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "input.txt").write_bytes(gzip.decompress(SOURCE.read_bytes()))
    return folder


@pytest.fixture
def serve():
    """serve(folder) → (base URL, list of requested paths); servers stop after the test."""
    servers = []

    def start(folder: Path) -> tuple[str, list[str]]:
        requests: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format, *args):
                pass

        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        thread = threading.Thread(
            target=functools.partial(server.serve_forever, poll_interval=0.01), daemon=True
        )
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}", requests

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_published_file_is_the_one_in_shared(served):
    data = (served / "input.txt").read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == PUBLISHED
    assert PUBLISHED.size == 1_115_394
    assert DEFAULT_BASE_URL == (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare"
    )


def test_cli_downloads_verifies_and_then_skips(tmp_path, served, serve, capsys):
    url, requests = serve(served)
    out = tmp_path / "data" / "shakespeare"
    argv = ["data", "shakespeare", "--out", str(out), "--base-url", url + "/", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "input.txt") and captured.err == ""
    assert (out / "input.txt").read_bytes() == (served / "input.txt").read_bytes()
    assert requests == ["/input.txt"]

    assert main(argv) == 0  # present and verified: nothing is fetched
    assert requests == ["/input.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["input.txt"]


def test_progress_bar_goes_to_stderr(tmp_path, served, serve, capsys):
    url, _ = serve(served)
    download_shakespeare(tmp_path, base_url=url)
    captured = capsys.readouterr()
    assert "input.txt" in captured.err and captured.out == ""


@pytest.mark.parametrize("damage", ["flip a byte", "truncate"])
def test_a_corrupt_download_fails_and_leaves_nothing(tmp_path, served, serve, capsys, damage):
    path = served / "input.txt"
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0x20
    else:
        del data[-1000:]
    path.write_bytes(bytes(data))
    url, _ = serve(served)
    out = tmp_path / "out"

    with pytest.raises(DataError, match=r"is not the published input\.txt.*nothing was saved"):
        download_shakespeare(out, base_url=url, progress=False)
    assert list(out.iterdir()) == []  # no partial or temporary file

    # The CLI reports the same on one line, exit status 2.
    assert main(["data", "shakespeare", "--out", str(out), "--base-url", url,
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("aiayn data: error: ") and err.count("\n") == 1
    assert list(out.iterdir()) == []


def test_a_damaged_existing_file_is_replaced(tmp_path, served, serve):
    url, requests = serve(served)
    (tmp_path / "input.txt").write_text("not Shakespeare", encoding="utf-8")
    path = download_shakespeare(tmp_path, base_url=url, progress=False)
    assert path.read_bytes() == (served / "input.txt").read_bytes()
    assert requests == ["/input.txt"]


def test_a_missing_file_on_the_server_is_a_clear_error(tmp_path, serve):
    (tmp_path / "empty").mkdir()
    url, _ = serve(tmp_path / "empty")
    with pytest.raises(DataError, match=r"input\.txt: HTTP 404.*--base-url"):
        download_shakespeare(tmp_path / "out", base_url=url, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_unsupported_url_is_refused_before_anything_is_created(tmp_path):
    with pytest.raises(ConfigError, match="must start with https://"):
        download_shakespeare(tmp_path / "out", base_url="ftp://example.org/shakespeare")
    assert not (tmp_path / "out").exists()
