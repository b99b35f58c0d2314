"""hub_reachable: one HEAD to the hub's endpoint, no retries; a silent or refused endpoint is "unreachable" at once."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from coa.models.source import check_model_dir, hub_reachable


class _Ok(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("answers", [True, False], ids=["answers", "silent"])
def test_hub_reachable_asks_the_endpoint_and_gives_up_after_the_timeout(monkeypatch, answers):
    from huggingface_hub import constants

    server = HTTPServer(("127.0.0.1", 0), _Ok)
    if answers:
        threading.Thread(target=server.handle_request, daemon=True).start()
    # silent: the kernel accepts the connection into the listen queue, nobody ever reads or answers it
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    start = time.perf_counter()
    try:
        assert hub_reachable(timeout_s=0.5) is answers
    finally:
        server.server_close()
    assert time.perf_counter() - start < 2


def test_hub_reachable_is_false_at_once_for_a_refused_connection(monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        start = time.perf_counter()
        assert not hub_reachable(timeout_s=5)
        assert time.perf_counter() - start < 1


def test_a_local_directory_without_weights_is_named_with_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"is missing model.safetensors or .*; tokenizer.json or tokenizer_config.json"):
        check_model_dir(str(tmp_path))
    check_model_dir("some-org/some-model")  # a hub id: left to from_pretrained
