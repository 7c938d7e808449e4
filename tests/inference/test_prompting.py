from __future__ import annotations

import pytest

from inference import prompting
from inference.protocol import ChatMessage


def test_gemma_format_puts_system_into_first_user_turn() -> None:
    prompt = prompting.gemma(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Hi"),
            ChatMessage(role="assistant", content="Hello"),
            ChatMessage(role="user", content="Bye"),
        ]
    )
    assert prompt.text == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert prompt.stop == ("<end_of_turn>",)


def test_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(prompting.UnknownChatFormat, match="llama9"):
        prompting.select("llama9", None, "<s>", "</s>")


def test_auto_uses_gemma_when_the_gguf_has_no_template() -> None:
    assert prompting.select("auto", None, "<bos>", "<eos>") is prompting.gemma
