"""The test receiver speaks the vLLM routes Tandem uses, with vLLM's shapes."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Iterator

import pytest

from tandem_trainer.receiver import Receiver, ReceiverState
from tandem_trainer.tiny_model import EOS_ID, make_tiny_model
from tests.procs import http_json


@pytest.fixture
def rx() -> Iterator[Receiver]:
    state = ReceiverState(make_tiny_model(1), model_name="tiny", bind_host="127.0.0.1", backend="gloo", join_timeout_s=2, update_timeout_s=2)
    r = Receiver(state).start()
    yield r
    r.stop()


def test_completions_have_vllm_shape(rx: Receiver) -> None:
    status, out = http_json("POST", rx.url + "/v1/completions", {"model": "tiny", "prompt": [1, 40, 41], "n": 3, "max_tokens": 6, "logprobs": 0, "return_token_ids": True, "temperature": 1.0})
    assert status == 200 and out["object"] == "text_completion" and len(out["choices"]) == 3
    for i, c in enumerate(out["choices"]):
        assert c["index"] == i and 1 <= len(c["token_ids"]) <= 6
        lps = c["logprobs"]["token_logprobs"]
        assert len(lps) == len(c["token_ids"]) and all(lp <= 0 for lp in lps)
        assert c["finish_reason"] == ("stop" if c["token_ids"][-1] == EOS_ID else "length")
        assert c["prompt_token_ids"] == [1, 40, 41]
    assert out["usage"]["completion_tokens"] == sum(len(c["token_ids"]) for c in out["choices"])
    # Text prompts work (byte tokenizer); no logprobs unless asked.
    status, out = http_json("POST", rx.url + "/v1/completions", {"prompt": "2+2=", "max_tokens": 2})
    assert status == 200 and out["choices"][0]["logprobs"] is None and out["choices"][0]["token_ids"] is None


@pytest.mark.parametrize(
    "body,status,param",
    [
        ({"prompt": [], "max_tokens": 2}, 400, "prompt"),
        ({"prompt": [1], "max_tokens": 0}, 400, "max_tokens"),
        ({"prompt": [1], "n": 0}, 400, "n"),
        ({"prompt": [1], "max_tokens": 5000}, 400, "max_tokens"),
        ({"prompt": [1], "model": "other"}, 404, "model"),
    ],
)
def test_bad_completions_requests(rx: Receiver, body: dict, status: int, param: str) -> None:
    got, out = http_json("POST", rx.url + "/v1/completions", body)
    assert got == status and out["error"]["param"] == param


def test_requests_wait_while_paused(rx: Receiver) -> None:
    assert http_json("POST", rx.url + "/pause?mode=keep", {})[0] == 200
    assert http_json("GET", rx.url + "/is_paused")[1] == {"is_paused": True}
    done = threading.Event()

    def ask() -> None:
        http_json("POST", rx.url + "/v1/completions", {"prompt": [1], "max_tokens": 2})
        done.set()

    threading.Thread(target=ask, daemon=True).start()
    assert not done.wait(0.5), "a request must not be served while paused (vLLM queues it)"
    assert http_json("POST", rx.url + "/resume", {})[0] == 200
    assert done.wait(5)
    assert http_json("POST", rx.url + "/pause?mode=bogus", {})[0] == 400


def test_admin_routes_and_update_errors(rx: Receiver) -> None:
    assert http_json("GET", rx.url + "/health")[0] == 200
    assert http_json("GET", rx.url + "/get_world_size")[1] == {"world_size": 1}
    assert http_json("GET", rx.url + "/v1/models")[1]["data"][0]["max_model_len"] > 0
    assert http_json("POST", rx.url + "/init_weight_transfer_engine", {})[0] == 400
    assert http_json("POST", rx.url + "/start_weight_update", {"is_checkpoint_format": True})[0] == 200
    status, out = http_json("POST", rx.url + "/update_weights", {"update_info": {"names": [], "dtype_names": [], "shapes": []}})
    assert status == 400 and "empty" in out["error"]
    info = {"names": ["embed.weight"], "dtype_names": ["float32"], "shapes": [[3]]}
    status, out = http_json("POST", rx.url + "/update_weights", {"update_info": info})
    assert status == 500 and "does not describe this model" in out["error"]
    # Closing a failed update records no version: those weights are nobody's.
    status, out = http_json("POST", rx.url + "/finish_weight_update", {"weight_version": "3", "tandem_policy_version": 3})
    assert status == 200 and out["tandem_policy_version"] == -1
    assert http_json("GET", rx.url + "/tandem/checksum")[1]["history"] == []


@pytest.mark.parametrize("placement", ["init", "update"])
def test_packing_fields_are_taken_only_where_the_mimicked_vllm_takes_them(placement: str) -> None:
    state = ReceiverState(make_tiny_model(1, 8), model_name="tiny", bind_host="127.0.0.1", backend="gloo", join_timeout_s=5, update_timeout_s=5, packing_placement=placement)
    rx = Receiver(state).start()
    try:
        group = {"master_address": "127.0.0.1", "master_port": 1, "rank_offset": 1, "world_size": 2}
        packing = {"packed": True, "packed_buffer_size_bytes": 1024, "packed_num_buffers": 2}
        layout = {"names": ["embed.weight"], "dtype_names": ["float32"], "shapes": [[3]]}
        refused_at = ("init_info", {**group, **packing}) if placement == "update" else ("update_info", {**layout, **packing})
        route = "/init_weight_transfer_engine" if refused_at[0] == "init_info" else "/update_weights"
        status, out = http_json("POST", rx.url + route, {refused_at[0]: refused_at[1]})
        assert status == 500 and out["error"] == f"Invalid {refused_at[0]} for NCCLWeightTransferEngine: unexpected keyword argument 'packed'"
    finally:
        rx.stop()


def test_keep_alive_requests_with_ignored_bodies(rx: Receiver) -> None:
    """Node's fetch reuses connections and sends "{}" to /pause and /resume:
    the body must be consumed or it corrupts the next request."""
    host, port = rx.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for path in ("/pause?mode=keep", "/resume", "/start_weight_update", "/resume"):
        conn.request("POST", path, body=b"{}", headers={"content-type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, (path, resp.status)
        json.loads(resp.read())
    conn.close()
