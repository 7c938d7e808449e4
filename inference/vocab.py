"""A model's vocabulary through llama.cpp's C API: tokens in, token pieces out.

Both engines tokenize and detokenize here, so the same request becomes the same
token ids and the same text whichever engine generates. The in-process engine
shares its loaded model's vocabulary; the ``llama-server`` engine loads the GGUF
``vocab_only`` (tokenizer data only, no weights).

Calls are thread-safe (llama.cpp's tokenizer keeps no per-call state in the
vocabulary) and release the GIL, so the service tokenizes on worker threads.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any


def native() -> Any:
    """llama-cpp-python's ctypes bindings of the C API, imported on first use.

    Typed ``Any`` on purpose: this module and the in-process engine are the only
    places that speak ctypes, and they check what they pass at their own boundary.
    """
    import llama_cpp
    import llama_cpp._logger

    # llama.cpp's own log (model loader tables, per-layer notes) only when it is an error
    llama_cpp._logger.set_verbose(False)
    return llama_cpp


class VocabError(RuntimeError):
    """The GGUF's vocabulary could not be loaded."""


class Vocab:
    """Tokenizer and detokenizer of one model (``model`` is a ``llama_model *``)."""

    def __init__(self, model: Any, *, owned: bool) -> None:
        self._api = native()
        self._model = model
        self._owned = owned
        self._vocab = self._api.llama_model_get_vocab(model)
        self.n_vocab = int(self._api.llama_vocab_n_tokens(self._vocab))
        self.bos_id = int(self._api.llama_vocab_bos(self._vocab))
        self.eos_id = int(self._api.llama_vocab_eos(self._vocab))
        self.add_bos = bool(self._api.llama_vocab_get_add_bos(self._vocab))
        self._pieces: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Vocab:
        """The vocabulary alone, without the weights (milliseconds)."""
        api = native()
        params = api.llama_model_default_params()
        params.vocab_only = True
        model = api.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise VocabError(f"cannot read the vocabulary of {path}")
        return cls(model, owned=True)

    @property
    def pointer(self) -> Any:
        """The ``llama_vocab *`` (for samplers)."""
        return self._vocab

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """Token ids of ``text``. ``special``: text like ``<|im_end|>`` becomes that control
        token; only the chat template's own text is tokenized so, never a user's."""
        data = text.encode("utf-8")
        api = self._api
        room = len(data) + 2  # at most one token per byte, plus BOS/EOS
        buffer = (api.llama_token * room)()
        count = api.llama_tokenize(self._vocab, data, len(data), buffer, room, add_bos, special)
        if count < 0:  # cannot happen with the bound above; be exact anyway
            room = -count
            buffer = (api.llama_token * room)()
            count = api.llama_tokenize(self._vocab, data, len(data), buffer, room, add_bos, special)
        return list(buffer[:count])

    def piece(self, token: int) -> bytes:
        """The bytes ``token`` stands for; control tokens render as nothing."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buffer = ctypes.create_string_buffer(64)
        size = self._api.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = self._api.llama_token_to_piece(self._vocab, token, buffer, -size, 0, False)
        piece = bytes(buffer.raw[:size])
        with self._lock:
            self._pieces[token] = piece
        return piece

    def text(self, token: int) -> str:
        """The token's text in the vocabulary (``<|im_end|>``), for templates."""
        if token < 0:
            return ""
        return bytes(self._api.llama_vocab_get_text(self._vocab, token)).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return bool(self._api.llama_vocab_is_eog(self._vocab, token))

    def out_of_range(self, tokens: list[int]) -> int | None:
        """The first token id this vocabulary does not have, if any."""
        for token in tokens:
            if not 0 <= token < self.n_vocab:
                return token
        return None

    def metadata(self, key: str) -> str | None:
        """A string value of the GGUF's metadata (``tokenizer.chat_template``)."""
        size = self._api.llama_model_meta_val_str(self._model, key.encode(), None, 0)
        if size < 0:
            return None
        buffer = ctypes.create_string_buffer(size + 1)
        self._api.llama_model_meta_val_str(self._model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8", "replace")

    def grammar_error(self, gbnf: str, triggers: tuple[str, ...] = ()) -> str | None:
        """Why llama.cpp refuses ``gbnf`` (lazy with ``triggers``), or None if it accepts it."""
        sampler = self.grammar_sampler(gbnf, triggers)
        if not sampler:
            return "llama.cpp could not parse the grammar"
        self._api.llama_sampler_free(sampler)
        return None

    def grammar_sampler(self, gbnf: str, triggers: tuple[str, ...] = ()) -> Any:
        """A new grammar sampler (NULL if the grammar does not parse); lazy with ``triggers``:
        inactive until the generated text matches one of those regular expressions."""
        api = self._api
        if not triggers:
            return api.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
        patterns = (ctypes.c_char_p * len(triggers))(*(t.encode() for t in triggers))
        no_tokens = (api.llama_token * 1)()
        return api.llama_sampler_init_grammar_lazy_patterns(
            self._vocab, gbnf.encode(), b"root", patterns, len(triggers), no_tokens, 0
        )

    def close(self) -> None:
        if self._owned and self._model:
            self._api.llama_model_free(self._model)
        self._model = None
