"""A tiny but real generator for tests: a stdlib HTTP server holding a
:class:`~tandem_trainer.tiny_model.TinyLM`, speaking the vLLM routes that
Tandem's coordinator and rollout workers call (docs/vllm-routes.md), and
receiving weights over a gloo (or torch NCCL) transfer group exactly as
vLLM's NCCL engine does: join at ``rank_offset`` on
``/init_weight_transfer_engine``, receive the packed broadcast described by
``update_info`` on ``/update_weights`` (blocking until done).

It is not vLLM: one sequence at a time per request thread, a bigram model,
a byte tokenizer. What it shares with vLLM is the wire contract, which is
what the trainer agent's tests need. Extra route: ``GET /tandem/checksum``
-> ``{policy_version, sha256, history}``. Binds 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import zlib
from typing import Any, Optional

import torch

from .http_util import HttpError, JsonHandler, QuietServer
from .log import configure_logging, get_logger
from .packing import DEFAULT_PACKED_BUFFER_SIZE_BYTES, ModelLayout
from .tiny_model import BOS_ID, TinyLM, decode_ids, encode_text, make_tiny_model, param_checksum, sample
from .transfer_group import GroupSpec, TorchTransferGroup, TransferError, receive_packed

MAX_MODEL_LEN = 4096

_GROUP_FIELDS = ("master_address", "master_port", "rank_offset", "world_size")
_PACKING_FIELDS = ("packed", "packed_buffer_size_bytes", "packed_num_buffers")
_LAYOUT_FIELDS = ("names", "dtype_names", "shapes", "is_checkpoint_format")


def _refuse_unknown(info: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """vLLM builds its NCCL infos with ``Dataclass(**dict)``: a field its
    release does not define is refused before anything else happens."""
    unknown = [k for k in info if k not in allowed]
    if unknown:
        raise HttpError(500, {"error": f"Invalid {what} for NCCLWeightTransferEngine: unexpected keyword argument {unknown[0]!r}"})


class ReceiverState:
    """Model, pause state and transfer group of one receiver."""

    def __init__(
        self,
        model: TinyLM,
        *,
        model_name: str,
        bind_host: str,
        backend: str,
        join_timeout_s: float,
        update_timeout_s: float,
        packing_placement: str = "init",
    ) -> None:
        self.model = model
        #: Where the packing settings come, as in the vLLM release mimicked:
        #: ``init`` (current: in init_info) or ``update`` (<= 0.25: in every update_info).
        self.packing_placement = packing_placement
        self.init_packing: dict[str, Any] = {}
        self.model_name = model_name
        self.bind_host = bind_host
        self.backend = backend
        self.join_timeout_s = join_timeout_s
        self.update_timeout_s = update_timeout_s
        self.layout = ModelLayout.from_named_tensors(model.named_parameters())
        self.model_lock = threading.RLock()
        self.cond = threading.Condition()
        self.paused = False
        self.in_flight = 0
        self.group: Optional[TorchTransferGroup] = None
        self.group_lock = threading.Lock()
        self.staged: Optional[dict[str, torch.Tensor]] = None
        self.policy_version = -1
        #: idle | started | received | failed: whether the update that
        #: finish_weight_update closes really delivered a full set of weights.
        self.update_state = "idle"
        self.history: list[dict[str, Any]] = []
        self.requests = 0
        self.counters = {"completions": 0, "updates": 0, "inits": 0}
        self.log = get_logger("receiver")

    # -- pause / resume -------------------------------------------------
    def wait_unpaused(self) -> None:
        with self.cond:
            while self.paused:
                self.cond.wait()

    def pause(self, mode: str) -> None:
        if mode not in ("keep", "wait", "abort"):
            raise HttpError(400, {"error": f"invalid pause mode {mode!r}: keep, wait or abort"})
        with self.cond:
            self.paused = True
            if mode != "keep":
                # wait: drain in-flight requests (abort is treated the same:
                # this receiver never cuts a request short).
                while self.in_flight > 0:
                    self.cond.wait()

    def resume(self) -> None:
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    # -- weight transfer ------------------------------------------------
    def init_group(self, init: Any) -> None:
        if not isinstance(init, dict):
            raise HttpError(400, {"detail": "Missing 'init_info' in request body"})
        at_init = self.packing_placement == "init"
        _refuse_unknown(init, _GROUP_FIELDS + _PACKING_FIELDS if at_init else _GROUP_FIELDS, "init_info")
        try:
            spec = GroupSpec(
                master_address=str(init["master_address"]),
                master_port=int(init["master_port"]),
                rank=int(init["rank_offset"]),
                world_size=int(init["world_size"]),
                timeout_s=self.join_timeout_s,
                local_address=self.bind_host,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise HttpError(500, {"error": f"Invalid init_info for the transfer engine: {err}"}) from err
        with self.group_lock:
            if self.group is not None:
                self.group.close()
                self.group = None
            try:
                self.group = TorchTransferGroup.open(spec, self.backend)  # type: ignore[arg-type]  # CLI-checked
            except TransferError as err:
                raise HttpError(500, {"error": str(err)}) from err
            self.init_packing = {k: init[k] for k in _PACKING_FIELDS if k in init} if at_init else {}
        self.counters["inits"] += 1

    def start_update(self) -> None:
        self.update_state = "started"

    def receive(self, info: Any) -> None:
        self.update_state = "failed"  # until the whole broadcast has arrived
        if not isinstance(info, dict):
            raise HttpError(400, {"detail": "Missing 'update_info' in request body"})
        per_update = self.packing_placement == "update"
        _refuse_unknown(info, _LAYOUT_FIELDS + _PACKING_FIELDS if per_update else _LAYOUT_FIELDS, "update_info")
        packing = info if per_update else self.init_packing
        try:
            layout = ModelLayout.from_update_info(info)
        except ValueError as err:
            raise HttpError(500, {"error": str(err)}) from err
        if not layout.specs:
            raise HttpError(400, {"error": "update_info.names is empty: nothing would be received while the trainer broadcasts"})
        if layout != self.layout:
            raise HttpError(500, {"error": "update_info does not describe this model (names, dtypes or shapes differ)"})
        buffer_size = int(packing.get("packed_buffer_size_bytes") or DEFAULT_PACKED_BUFFER_SIZE_BYTES)
        if not packing.get("packed", False):
            buffer_size = 1  # one tensor per broadcast: every chunk closes after one tensor
        staged: dict[str, torch.Tensor] = {}
        with self.group_lock:
            if self.group is None:
                raise HttpError(500, {"error": "NCCL weight transfer not initialized. Call init_weight_transfer_engine first."})
            try:
                for chunk in receive_packed(self.group, layout, buffer_size, time.monotonic() + self.update_timeout_s):
                    for name, tensor in chunk:
                        staged[name] = tensor.clone()
            except TransferError as err:
                self.group.close()  # a failed collective poisons the group
                self.group = None
                raise HttpError(500, {"error": str(err)}) from err
        # Swap in atomically between two tokens of any in-flight request.
        with self.model_lock:
            params = dict(self.model.named_parameters())
            with torch.no_grad():
                for name, tensor in staged.items():
                    params[name].copy_(tensor)
        self.update_state = "received"
        self.counters["updates"] += 1

    def finish(self, body: Any) -> int:
        version: Optional[int] = None
        if isinstance(body, dict):
            v = body.get("tandem_policy_version")
            if isinstance(v, int) and not isinstance(v, bool):
                version = v
            elif isinstance(body.get("weight_version"), str) and body["weight_version"].lstrip("-").isdigit():
                version = int(body["weight_version"])
        state, self.update_state = self.update_state, "idle"
        if state != "received":
            # The coordinator closes a failed update too (vLLM has no abort):
            # these weights are no version at all until a full sync.
            self.policy_version = -1
            self.log.warning("weight update closed without complete weights", state=state, requested=version)
            return self.policy_version
        with self.model_lock:
            self.policy_version = version if version is not None else self.policy_version + 1
            digest = param_checksum(self.model.named_parameters())
        self.history.append({"policy_version": self.policy_version, "sha256": digest})
        self.log.info("weights updated", policy_version=self.policy_version, sha256=digest[:16])
        return self.policy_version

    # -- generation -----------------------------------------------------
    def complete(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(400, {"error": {"message": "body must be a JSON object", "type": "BadRequestError", "param": None, "code": 400}})

        def bad(message: str, param: str) -> HttpError:
            return HttpError(400, {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}})

        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompt_ids = [BOS_ID] + encode_text(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and 0 <= t < self.model.embed.num_embeddings for t in prompt):
            prompt_ids = list(prompt)
        else:
            raise bad("prompt must be a string or a non-empty list of token ids in the vocabulary", "prompt")
        n = body.get("n", 1)
        max_tokens = body.get("max_tokens", 16)
        max_tokens = 16 if max_tokens is None else max_tokens
        temperature = body.get("temperature", 1.0)
        temperature = 1.0 if temperature is None else temperature
        if not isinstance(n, int) or n < 1:
            raise bad("n must be a positive integer", "n")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise bad("max_tokens must be a positive integer", "max_tokens")
        if len(prompt_ids) + max_tokens > MAX_MODEL_LEN:
            raise bad(f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds max_model_len {MAX_MODEL_LEN}", "max_tokens")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise bad("temperature must be a non-negative number", "temperature")
        if body.get("model") not in (None, self.model_name):
            raise HttpError(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}})
        seed = body.get("seed")
        self.wait_unpaused()  # vLLM queues new requests while paused
        with self.cond:
            self.in_flight += 1
            self.requests += 1
            request_no = self.requests
        try:
            choices = []
            for i in range(n):
                g = torch.Generator()
                base = int(seed) if isinstance(seed, int) else zlib.crc32(json.dumps([prompt_ids, request_no]).encode())
                g.manual_seed(base * 1000 + i)
                ids, lps, finish = self._generate(prompt_ids, max_tokens, float(temperature), g)
                text = decode_ids(ids)
                choices.append(
                    {
                        "index": i,
                        "text": text,
                        "finish_reason": finish,
                        "stop_reason": None,
                        "token_ids": ids if body.get("return_token_ids") else None,
                        "prompt_token_ids": prompt_ids if body.get("return_token_ids") else None,
                        "prompt_logprobs": None,
                        "logprobs": None
                        if body.get("logprobs") is None
                        else {
                            "text_offset": list(range(len(ids))),
                            "token_logprobs": lps,
                            "tokens": [f"token_id:{t}" for t in ids],
                            "top_logprobs": [{f"token_id:{t}": lp} for t, lp in zip(ids, lps)],
                        },
                    }
                )
            self.counters["completions"] += 1
        finally:
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()
        completion_tokens = sum(len(c["token_ids"] or []) for c in choices)
        return {
            "id": f"cmpl-{request_no}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": completion_tokens, "total_tokens": len(prompt_ids) + completion_tokens},
        }

    def _generate(self, prompt_ids: list[int], max_tokens: int, temperature: float, g: torch.Generator) -> tuple[list[int], list[float], str]:
        # Holding model_lock per token (not per request) lets a keep-mode
        # update land between two tokens, as in vLLM.
        def before_token() -> None:
            self.wait_unpaused()

        ids: list[int] = []
        lps: list[float] = []
        last = list(prompt_ids)
        for _ in range(max_tokens):
            before_token()
            with self.model_lock:
                tok_ids, tok_lps, finish = sample(self.model, last, 1, temperature, g)
            ids += tok_ids
            lps += tok_lps
            last = tok_ids
            if finish == "stop":
                return ids, lps, "stop"
        return ids, lps, "length"

    def checksum(self) -> dict[str, Any]:
        with self.model_lock:
            digest = param_checksum(self.model.named_parameters())
        return {"policy_version": self.policy_version, "sha256": digest, "history": list(self.history), "counters": dict(self.counters)}


class Receiver:
    """The HTTP server around a :class:`ReceiverState`."""

    def __init__(self, state: ReceiverState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        st = state

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                path = self.path_only
                try:
                    if path == "/health":
                        self.send_json(200, None)
                    elif path == "/get_world_size":
                        self.send_json(200, {"world_size": 1})
                    elif path == "/is_paused":
                        self.send_json(200, {"is_paused": st.paused})
                    elif path == "/v1/models":
                        self.send_json(200, {"object": "list", "data": [{"id": st.model_name, "object": "model", "owned_by": "tandem-receiver", "root": st.model_name, "max_model_len": MAX_MODEL_LEN}]})
                    elif path == "/tandem/checksum":
                        self.send_json(200, st.checksum())
                    else:
                        self.send_json(404, {"detail": "Not Found"})
                except HttpError as err:
                    self.send_json(err.status, err.body)

            def do_POST(self) -> None:  # noqa: N802
                path = self.path_only
                try:
                    self.read_body()
                    if path == "/v1/completions":
                        self.send_json(200, st.complete(self.read_json()))
                    elif path == "/pause":
                        st.pause(self.query.get("mode", ["abort"])[0])
                        self.send_json(200, {"status": "paused"})
                    elif path == "/resume":
                        st.resume()
                        self.send_json(200, {"status": "resumed"})
                    elif path == "/init_weight_transfer_engine":
                        body = self.read_json()
                        st.init_group(body.get("init_info") if isinstance(body, dict) else None)
                        self.send_json(200, {"message": "Weight transfer initialized"})
                    elif path == "/start_weight_update":
                        self.read_json(allow_empty=True)
                        st.start_update()
                        self.send_json(200, {"message": "Weight update started"})
                    elif path == "/update_weights":
                        body = self.read_json()
                        st.receive(body.get("update_info") if isinstance(body, dict) else None)
                        self.send_json(200, {"message": "Weights updated"})
                    elif path == "/finish_weight_update":
                        version = st.finish(self.read_json(allow_empty=True))
                        self.send_json(200, {"message": "Weight update finished", "tandem_policy_version": version})
                    else:
                        self.send_json(404, {"detail": "Not Found"})
                except HttpError as err:
                    self.send_json(err.status, err.body)

        self._httpd = QuietServer((host, port), Handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m tandem_trainer.receiver [--port 0] [--seed 1]``; prints
    ``{"event": "listening", "url": ...}`` on stdout."""
    p = argparse.ArgumentParser(description="Tiny vLLM-compatible receiver for Tandem tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1, help="initial weights (differ from the trainer's on purpose)")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    p.add_argument("--join-timeout-s", type=float, default=60.0)
    p.add_argument("--update-timeout-s", type=float, default=60.0)
    p.add_argument(
        "--packing-placement",
        choices=["init", "update"],
        default="init",
        help="where the NCCL packing settings come: init_info (current vLLM) or update_info (vLLM <= 0.25)",
    )
    args = p.parse_args(argv)
    configure_logging()
    torch.set_num_threads(1)
    state = ReceiverState(
        make_tiny_model(args.seed, args.dim),
        model_name=args.model_name,
        bind_host=args.host if args.host not in ("0.0.0.0", "") else "127.0.0.1",
        backend=args.backend,
        join_timeout_s=args.join_timeout_s,
        update_timeout_s=args.update_timeout_s,
        packing_placement=args.packing_placement,
    )
    receiver = Receiver(state, args.host, args.port).start()
    sys.stdout.write(json.dumps({"event": "listening", "url": receiver.url}) + "\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
