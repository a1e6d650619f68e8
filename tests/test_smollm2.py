"""The real SmolLM2-135M-Instruct (the smollm2-gguf asset) read by minilm (minilm/gguf) and by transformers from
the same GGUF file: the same logits, the same greedy answers (with and without the KV cache, alone and in a
left-padded batch, stopping at the same end token), and `python -m minilm.chat` answers a question.

Each model is loaded once for the module (transformers' GGUF reader is the slow part). The 64-token,
8-prompt version of the greedy comparison is `python -m bench.bench_smollm2_parity`."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.assets import fetch
from minilm.chat.load import end_ids
from minilm.gguf import load_gguf
from tokenizer.gguf_vocab import tokenizer_from_gguf

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LOGITS_TOL = 1e-4  # the weights are the same float32 numbers; the sums run in another order
NEW_TOKENS = 16
PROMPTS = [  # chat messages whose answers run past NEW_TOKENS, so no answer ends inside the comparison
    "Write a haiku about the sea.",
    "Explain why the sky is blue to a child who has just asked you at the beach.",  # 10 tokens longer
    "Give me three tips for learning to code.",
]


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    return fetch("smollm2-gguf")


@pytest.fixture(scope="module")
def tokenizer(gguf_path):
    return tokenizer_from_gguf(gguf_path)


@pytest.fixture(scope="module")
def model(gguf_path):
    return load_gguf(gguf_path)


@pytest.fixture(scope="module")
def hf_model(gguf_path):
    from transformers import AutoModelForCausalLM
    hf_model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                    dtype=torch.float32).eval()
    # The file's <|im_end|> as generate's default end token would stop an answer even where a call passes
    # eos_token_id=None; hf_greedy says where to stop.
    hf_model.generation_config.eos_token_id = None
    return hf_model


def chat_prompt(tokenizer, text: str) -> torch.Tensor:
    """A user message in SmolLM2's chat template, ending with the opening of the assistant's turn: (1, T)."""
    return torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": text}])])


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[torch.Tensor]:
    return [chat_prompt(tokenizer, text) for text in PROMPTS]


@pytest.fixture(scope="module")
def greedy(model, prompts) -> list[torch.Tensor]:
    """minilm's greedy answer to each prompt alone, with the KV cache: NEW_TOKENS ids each, (1, NEW_TOKENS)."""
    return [model.generate(ids, NEW_TOKENS, temperature=0.0)[:, ids.size(1):] for ids in prompts]


def hf_greedy(hf_model, ids, new_tokens: int, eos_token_id=None) -> torch.Tensor:
    """transformers' greedy generate: (1, new ids); without eos_token_id it writes exactly new_tokens."""
    from transformers import GenerationConfig
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos_token_id,
                              pad_token_id=eos_token_id if eos_token_id is not None else 0)
    with torch.no_grad():
        return hf_model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)[:, ids.size(1):]


def test_the_loaded_head_is_the_token_embedding_itself(model):
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.wte.weight  # one matrix, as in the file (load_gguf assigns, then ties)


def test_logits_equal_transformers_on_chat_prompts(model, hf_model, prompts):
    for ids in prompts:
        with torch.no_grad():
            ours, _ = model(ids)
            theirs = hf_model(ids).logits
        assert (ours - theirs).abs().max().item() <= LOGITS_TOL


def test_greedy_tokens_are_the_same_without_the_kv_cache(model, prompts, greedy):
    """Without the cache, each step runs the whole sequence so far and takes the argmax at its last position.
    The model is causal, so one forward over the prompt and the cached answer gives every one of those steps'
    logits at once: the argmax at each step's position must be the answer's next token."""
    for ids, answer in zip(prompts, greedy):
        with torch.no_grad():
            logits, _ = model(torch.cat([ids, answer], dim=1))  # no cache: all positions recomputed
        steps = logits[:, ids.size(1) - 1: -1]  # (1, NEW_TOKENS, vocab): the positions each step reads
        assert torch.equal(steps.argmax(dim=-1), answer)


def test_greedy_tokens_equal_transformers_generate(hf_model, prompts, greedy):
    for ids, ours in zip(prompts, greedy):
        assert torch.equal(hf_greedy(hf_model, ids, NEW_TOKENS), ours)


def test_a_left_padded_batch_of_two_decodes_each_prompt_as_it_does_alone(model, prompts, greedy):
    rows = [prompts[0][0].tolist(), prompts[1][0].tolist()]
    width = max(len(row) for row in rows)
    ids = torch.tensor([[0] * (width - len(row)) + row for row in rows])  # (2, width), padded on the left
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    assert not mask.all()  # the prompts differ in length, so one row is padded
    answers = model.generate(ids, NEW_TOKENS, temperature=0.0, attention_mask=mask)[:, width:]
    assert torch.equal(answers, torch.cat(greedy[:2]))


def test_the_answer_stops_at_the_end_token_where_transformers_stops(model, hf_model, tokenizer):
    ids = chat_prompt(tokenizer, "What is the capital of France?")
    ends = end_ids(tokenizer)
    ours = torch.cat(list(model.generate_tokens(ids, 32, temperature=0.0, eos_token_ids=ends)), dim=1)
    theirs = hf_greedy(hf_model, ids, 32, eos_token_id=tokenizer.special_tokens["<|im_end|>"])
    assert ours.size(1) < 32 and ours[0, -1].item() in ends  # it ended by itself
    assert torch.equal(ours, theirs)


def test_the_chat_command_says_paris_is_the_capital_of_france():
    command = [sys.executable, "-m", "minilm.chat", "--prompt", "What is the capital of France?",
               "--max_new_tokens", "12"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout
