"""Continuous batching on one llama.cpp context: the in-process engine's scheduler thread.

One thread owns the context. Each step builds one ``llama_batch``: one token for
every generating sequence, then prompt chunks of newly admitted sequences with
what is left of ``n_batch`` (logits only on a prompt's last token); one
``llama_decode``; then each output is sampled with its sequence's own sampler
chain. New requests join while others generate; a finished sequence frees its
slot at once.

Each slot is one KV sequence (``kv_unified=false``: a slot's context is
``CTX_SIZE``, as with ``llama-server -np``). Two rules keep a step one ubatch
where possible: llama.cpp splits a batch into ubatches of consecutive,
increasing sequence ids, so the batch is ordered by sequence id and free ids
are taken lowest first; and ``swa_full=false`` (sliding-window caches at their
window size, llama-server's default).

A slot keeps its tokens' KV after its request ends: the next request whose
prompt shares a prefix with it (a multi-turn chat) reuses that prefix and
decodes only the rest. Grammars are checked by rejection sampling (sample
freely, check the one token, constrain the whole vocabulary only when it is
refused), as llama-server does: putting the grammar first costs ~12 ms a token
on a 49k vocabulary. Sequences with different LoRA adapters never share a step:
each step serves one adapter group, in turn.
"""

from __future__ import annotations

import ctypes
import heapq
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engines.base import (
    PENALTY_LAST_N,
    Done,
    Event,
    FinishReason,
    Job,
    Token,
    TokenLogprob,
)
from inference.vocab import Vocab, native

log = logging.getLogger("p2.inference")

_CANDIDATE = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class Failure(Exception):
    """Sent to a request whose sequences could not be decoded."""


Deliver = Callable[[list[Event] | Failure], None]


@dataclass(eq=False)
class Ticket:
    """One submitted job, shared by its choices; the front holds it to stop or cancel."""

    job: Job
    adapter: Any  # llama_adapter_lora * or None
    deliver: Deliver
    released: Callable[[], None]
    cancelled: bool = False
    stopped: set[int] = field(default_factory=set)
    open: int = 0
    outbox: list[Event] = field(default_factory=list)

    def stop(self, index: int) -> None:
        self.stopped.add(index)

    @property
    def adapter_key(self) -> str | None:
        return self.job.adapter.id if self.job.adapter is not None else None


@dataclass
class _Slot:
    """A KV sequence and the tokens whose keys and values it holds."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    adapter_key: str | None = None


@dataclass(eq=False)
class _Seq:
    """One choice of a request, generating in one slot."""

    ticket: Ticket
    slot: _Slot
    index: int
    chain: Any = None
    grammar: Any = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to decode
    last: int = -1  # the sampled token not yet decoded
    generated: int = 0
    state: str = "prefill"  # prefill -> gen -> done; children wait for their root's prompt
    children: list[_Seq] = field(default_factory=list)


class Scheduler:
    """Owns ``ctx`` (a ``llama_context *`` of ``slots`` sequences) from its own thread."""

    def __init__(self, model: Any, ctx: Any, vocab: Vocab, *, slots: int, n_batch: int) -> None:
        self._api = api = native()
        self._model = model
        self._ctx = ctx
        self._vocab = vocab
        self._memory = api.llama_get_memory(ctx)
        self._n_swa = int(api.llama_model_n_swa(model))
        self._n_batch = n_batch
        self._batch = api.llama_batch_init(n_batch, 0, slots)
        # numpy views on the batch arrays: filling them costs far less than ctypes writes
        self._tok = np.ctypeslib.as_array(self._batch.token, shape=(n_batch,))
        self._pos = np.ctypeslib.as_array(self._batch.pos, shape=(n_batch,))
        self._logits = np.ctypeslib.as_array(self._batch.logits, shape=(n_batch,))
        np.ctypeslib.as_array(self._batch.n_seq_id, shape=(n_batch,))[:] = 1
        self._seq_ids = [self._batch.seq_id[i] for i in range(n_batch)]
        self._slots = [_Slot(i) for i in range(slots)]
        self._free = list(range(slots))  # a heap: lowest id first
        self._pending: deque[Ticket] = deque()
        self._active: list[_Seq] = []
        self._adapter: Any = None  # the adapter the context applies now
        self._turn = 0
        self._dirty: set[Ticket] = set()
        self._cv = threading.Condition()
        self._closing = False
        self._candidates = np.zeros(vocab.n_vocab, dtype=_CANDIDATE)
        self._candidates_view = api.llama_token_data_array(
            self._candidates.ctypes.data_as(api.llama_token_data_p), vocab.n_vocab, -1, False
        )
        self._one = np.zeros(1, dtype=_CANDIDATE)
        self._one_view = api.llama_token_data_array(
            self._one.ctypes.data_as(api.llama_token_data_p), 1, -1, False
        )
        self._ids = np.arange(vocab.n_vocab, dtype=np.int32)
        self._eog = frozenset(t for t in range(vocab.n_vocab) if vocab.is_eog(t))
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    # -- called from the event loop -----------------------------------------

    def submit(
        self, job: Job, adapter: Any, deliver: Deliver, released: Callable[[], None]
    ) -> Ticket:
        ticket = Ticket(job, adapter, deliver, released, open=job.n)
        with self._cv:
            self._pending.append(ticket)
            self._cv.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        with self._cv:
            ticket.cancelled = True
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
        for seq in self._active:
            self._free_samplers(seq)
        for ticket in {s.ticket for s in self._active} | set(self._pending):
            ticket.released()  # nobody waits on a closed engine
        self._active, self._pending = [], deque()
        self._api.llama_batch_free(self._batch)

    # -- the scheduler thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._pending and not self._active:
                    self._cv.wait()
                if self._closing:
                    return
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a bug must fail its requests, not hang them
                log.exception("batch step failed")
                for seq in list(self._active):
                    self._finish(seq, FinishReason.STOP, Failure(str(exc)))
                self._active = []
            self._flush()

    def _admit(self) -> None:
        while self._pending:
            ticket = self._pending[0]
            if ticket.cancelled:
                self._pending.popleft()
                ticket.released()
                continue
            if len(self._free) < ticket.job.n:
                return
            self._pending.popleft()
            root = _Seq(ticket, self._reusable_slot(ticket), 0)
            self._prepare(root)
            for index in range(1, ticket.job.n):
                child = _Seq(ticket, self._slots[heapq.heappop(self._free)], index, state="wait")
                self._forget(child.slot)
                self._samplers(child)
                root.children.append(child)
            self._active.append(root)
            if any(s.chain is None for s in (root, *root.children)):
                self._finish(root, FinishReason.STOP, Failure("the grammar did not parse"))

    def _reusable_slot(self, ticket: Ticket) -> _Slot:
        """The free slot whose cached tokens share the longest prefix with the prompt
        (same adapter); without any, the lowest free one."""
        prompt = ticket.job.prompt
        best, best_len = self._free[0], 0
        for seq_id in self._free:
            slot = self._slots[seq_id]
            if slot.adapter_key != ticket.adapter_key or not slot.tokens:
                continue
            common = _common_prefix(slot.tokens, prompt)
            if common > best_len:
                best, best_len = seq_id, common
        self._free.remove(best)
        heapq.heapify(self._free)
        return self._slots[best]

    def _prepare(self, root: _Seq) -> None:
        """Drop what the slot's cache does not share with the prompt; queue the rest."""
        api, slot, prompt = self._api, root.slot, root.ticket.job.prompt
        keep = 0
        if slot.adapter_key == root.ticket.adapter_key:
            keep = min(_common_prefix(slot.tokens, prompt), len(prompt) - 1)
        if keep and self._n_swa:
            # a sliding-window cache may no longer hold what a reused prefix needs
            oldest = int(api.llama_memory_seq_pos_min(self._memory, slot.seq_id))
            if oldest > max(0, keep - self._n_swa):
                keep = 0
        if not api.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1):
            keep = 0
            api.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.tokens = list(prompt[:keep])
        slot.adapter_key = root.ticket.adapter_key
        root.pending = list(prompt[keep:])
        self._samplers(root)

    def _samplers(self, seq: _Seq) -> None:
        api, job = self._api, seq.ticket.job
        s = job.sampling
        chain = api.llama_sampler_chain_init(api.llama_sampler_chain_default_params())
        biases = list(s.logit_bias)
        if s.ignore_eos:
            biases += [(token, float("-inf")) for token in sorted(self._eog)]
        if biases:
            array = (api.llama_logit_bias * len(biases))(*biases)
            n_vocab = self._vocab.n_vocab
            api.llama_sampler_chain_add(
                chain, api.llama_sampler_init_logit_bias(n_vocab, len(biases), array)
            )
        if s.penalized:
            penalties = api.llama_sampler_init_penalties(
                self._vocab.n_vocab,
                PENALTY_LAST_N,
                s.repeat_penalty,
                s.frequency_penalty,
                s.presence_penalty,
            )
            api.llama_sampler_chain_add(chain, penalties)
            for token in job.prompt[-PENALTY_LAST_N:]:  # as llama-server: the prompt counts
                api.llama_sampler_accept(chain, token)
        if s.temperature <= 0:
            api.llama_sampler_chain_add(chain, api.llama_sampler_init_greedy())
        else:
            if s.top_k > 0:
                api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_k(s.top_k))
            if s.top_p < 1.0:
                api.llama_sampler_chain_add(chain, api.llama_sampler_init_top_p(s.top_p, 1))
            if s.min_p > 0:
                api.llama_sampler_chain_add(chain, api.llama_sampler_init_min_p(s.min_p, 1))
            api.llama_sampler_chain_add(chain, api.llama_sampler_init_temp(s.temperature))
            seed = (s.seed + seq.index) % 0xFFFFFFFF
            api.llama_sampler_chain_add(chain, api.llama_sampler_init_dist(seed))
        seq.chain = chain
        if job.grammar is not None:
            seq.grammar = self._vocab.grammar_sampler(job.grammar.gbnf, job.grammar.triggers)
            if not seq.grammar:  # the front checked it: not expected, but never unconstrained
                self._free_samplers(seq)

    def _free_samplers(self, seq: _Seq) -> None:
        for sampler in (seq.chain, seq.grammar):
            if sampler:
                self._api.llama_sampler_free(sampler)
        seq.chain = seq.grammar = None

    def _finish(self, seq: _Seq, reason: FinishReason, failure: Failure | None = None) -> None:
        """The choice is over: its slot keeps its KV (for prefix reuse) and is free again."""
        if seq.state == "done":
            return
        seq.state = "done"
        self._free_samplers(seq)
        heapq.heappush(self._free, seq.slot.seq_id)
        ticket = seq.ticket
        if failure is not None:
            self._forget(seq.slot)  # what its KV holds is unknown now
            ticket.outbox = []
            self._dirty.discard(ticket)
            if not ticket.cancelled:
                ticket.deliver(failure)
            ticket.cancelled = True  # one failure is all the request hears
        elif not ticket.cancelled:
            ticket.outbox.append(Done(seq.index, reason, seq.generated))
            self._dirty.add(ticket)
        ticket.open -= 1
        if ticket.open == 0:
            ticket.released()
        for child in seq.children:  # children whose prompt was never ready
            self._finish(child, reason, failure)
        seq.children = []

    def _forget(self, slot: _Slot) -> None:
        self._api.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.tokens = []

    def _flush(self) -> None:
        """Hand each request this step's events, in one batch per request."""
        for ticket in self._dirty:
            if ticket.outbox and not ticket.cancelled:
                ticket.deliver(ticket.outbox)
            ticket.outbox = []
        self._dirty.clear()
        self._active = [s for s in self._active if s.state != "done"]

    def _step(self) -> None:
        for seq in self._active:
            ticket = seq.ticket
            if ticket.cancelled or seq.index in ticket.stopped:
                self._finish(seq, FinishReason.STOP)
        self._active = sorted(
            (s for s in self._active if s.state != "done"), key=lambda s: s.slot.seq_id
        )
        group = self._next_group()
        if group is None:
            return
        batch = [s for s in self._active if s.ticket.adapter is group[0]]
        self._apply_adapter(group[0])
        outputs = self._fill(batch)
        if self._batch.n_tokens == 0:
            return
        rc = self._api.llama_decode(self._ctx, self._batch)
        if rc != 0:
            for seq in batch:
                self._finish(seq, FinishReason.STOP, Failure(f"llama_decode returned {rc}"))
            return
        for seq, row in outputs:
            if seq.state == "prefilled":
                for child in seq.children:
                    self._api.llama_memory_seq_cp(
                        self._memory, seq.slot.seq_id, child.slot.seq_id, -1, -1
                    )
                    child.slot.tokens = list(seq.slot.tokens)
                    child.slot.adapter_key = seq.slot.adapter_key
                    child.state = "gen"
                    self._active.append(child)
                    self._emit(child, row)
                seq.children = []
                seq.state = "gen"
            self._emit(seq, row)

    def _next_group(self) -> tuple[Any] | None:
        """The adapter whose sequences run this step: each adapter in turn."""
        adapters: list[Any] = []
        for seq in self._active:
            if seq.state in ("prefill", "gen") and seq.ticket.adapter not in adapters:
                adapters.append(seq.ticket.adapter)
        if not adapters:
            return None
        self._turn = (self._turn + 1) % len(adapters)
        return (adapters[self._turn],)

    def _apply_adapter(self, adapter: Any) -> None:
        if adapter is self._adapter:
            return
        api = self._api
        if adapter is None:
            api.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            adapters = (api.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(1.0)
            api.llama_set_adapters_lora(self._ctx, adapters, 1, scales)
        self._adapter = adapter

    def _fill(self, batch: list[_Seq]) -> list[tuple[_Seq, int]]:
        """Write the step's tokens into the batch; the rows whose logits are sampled."""
        n = 0
        outputs: list[tuple[_Seq, int]] = []
        tok, pos, logits, seq_ids = self._tok, self._pos, self._logits, self._seq_ids
        for seq in batch:  # one token for each generating sequence
            if seq.state == "gen":
                tok[n] = seq.last
                pos[n] = len(seq.slot.tokens)
                seq_ids[n][0] = seq.slot.seq_id
                logits[n] = 1
                seq.slot.tokens.append(seq.last)
                outputs.append((seq, n))
                n += 1
        for seq in batch:  # prompt chunks with what is left of the batch
            if seq.state != "prefill" or n >= self._n_batch:
                continue
            take = min(self._n_batch - n, len(seq.pending))
            chunk, seq.pending = seq.pending[:take], seq.pending[take:]
            start = len(seq.slot.tokens)
            tok[n : n + take] = chunk
            pos[n : n + take] = np.arange(start, start + take, dtype=np.int32)
            logits[n : n + take] = 0
            for i in range(n, n + take):
                seq_ids[i][0] = seq.slot.seq_id
            seq.slot.tokens.extend(chunk)
            n += take
            if not seq.pending:
                logits[n - 1] = 1
                outputs.append((seq, n - 1))
                seq.state = "prefilled"
        self._batch.n_tokens = n
        return outputs

    def _emit(self, seq: _Seq, row: int) -> None:
        """Sample ``seq``'s next token from output ``row``; send it or finish the choice."""
        job = seq.ticket.job
        if seq.grammar:
            token = self._sample_with_grammar(seq, row)
        else:
            token = int(self._api.llama_sampler_sample(seq.chain, self._ctx, row))
        if token in self._eog:
            self._finish(seq, FinishReason.STOP)
            return
        logprob = self._logprob(row, token, job.logprobs) if job.logprobs is not None else None
        seq.generated += 1
        seq.last = token
        if not seq.ticket.cancelled:
            seq.ticket.outbox.append(Token(seq.index, self._vocab.piece(token), logprob))
            self._dirty.add(seq.ticket)
        if seq.generated >= job.max_tokens:
            self._finish(seq, FinishReason.LENGTH)

    def _load_candidates(self, row: int) -> Any:
        n_vocab = self._vocab.n_vocab
        logits = np.ctypeslib.as_array(
            self._api.llama_get_logits_ith(self._ctx, row), shape=(n_vocab,)
        )
        self._candidates["id"] = self._ids  # samplers reorder the array
        self._candidates["logit"] = logits
        self._candidates["p"] = 0.0
        view = self._candidates_view
        view.size, view.selected, view.sorted = n_vocab, -1, False
        return view

    def _sample_with_grammar(self, seq: _Seq, row: int) -> int:
        """llama-server's rejection sampling: sample freely; if the grammar refuses that one
        token, apply the grammar to the whole vocabulary and sample again."""
        api, ref = self._api, ctypes.byref
        view = self._load_candidates(row)
        api.llama_sampler_apply(seq.chain, ref(view))
        token = int(self._candidates["id"][view.selected])
        self._one["id"], self._one["logit"], self._one["p"] = token, 1.0, 0.0
        one = self._one_view
        one.size, one.selected, one.sorted = 1, -1, False
        api.llama_sampler_apply(seq.grammar, ref(one))
        if not np.isfinite(self._one["logit"][0]):
            view = self._load_candidates(row)
            api.llama_sampler_apply(seq.grammar, ref(view))
            api.llama_sampler_apply(seq.chain, ref(view))
            token = int(self._candidates["id"][view.selected])
        api.llama_sampler_accept(seq.grammar, token)
        api.llama_sampler_accept(seq.chain, token)
        return token

    def _logprob(self, row: int, token: int, k: int) -> TokenLogprob:
        logits: npt.NDArray[np.float32] = np.ctypeslib.as_array(
            self._api.llama_get_logits_ith(self._ctx, row), shape=(self._vocab.n_vocab,)
        )
        peak = float(logits.max())
        total = peak + float(np.log(np.exp(logits - peak).sum()))
        top: tuple[tuple[int, float], ...] = ()
        if k > 0:
            ids = np.argpartition(logits, -k)[-k:]
            ids = ids[np.argsort(-logits[ids], kind="stable")]
            top = tuple((int(i), float(logits[i]) - total) for i in ids)
        return TokenLogprob(token, float(logits[token]) - total, top)


def _common_prefix(a: list[int], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
