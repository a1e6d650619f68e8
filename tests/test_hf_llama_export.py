"""`python -m minilm.hf.export` of a Llama: a train_gpt.py --architecture llama checkpoint, and a GGUF file (its
tokenizer and chat template from the metadata), each written as a folder transformers loads with the same
logits, and whose tokenizer AutoTokenizer reads with minilm's ids (apply_chat_template included)."""

import json

import pytest
import torch

from minilm.gguf import load_gguf
from minilm.model import Llama, LlamaConfig
from test_from_pretrained import write_gguf
from test_hf_export import run_export, train_gpt_run
from tokenizer import load_tokenizer, render_chat, tokenizer_from_gguf
from tokenizer.byte_level import BYTE_TO_UNICODE

import transformers
pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
TEXTS = ["to be or not to be", "Whether 'tis nobler 1234 in the mind", "naïve café 🙂!"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MESSAGES = [{"role": "user", "content": "a cab"}, {"role": "assistant", "content": "abc"},
            {"role": "user", "content": "12 cabs"}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("llama_export")


@pytest.fixture(scope="module")
def trained(workdir):
    """(checkpoint, OUT) of a Llama trained by train_gpt.py with a BPE tokenizer, exported from its OUT_DIR."""
    run = train_gpt_run(workdir, "llama-bpe", "--architecture", "llama", "--n_kv_head", "1", "--tokenizer", "bpe",
                        "--tokenizer_vocab_size", "280")
    status, _ = run_export(run, workdir / "llama-bpe-hf")
    assert status == 0
    return run / "best", workdir / "llama-bpe-hf"


def write_chat_gguf(path):
    """A tiny Llama in GGUF with a chat model's tokenizer: <|im_start|>, <|im_end|> (eos), the 256 bytes,
    two merges, SmolLM2's pre-tokenizer and a ChatML template."""
    import gguf
    specials, merges = ["<|im_start|>", "<|im_end|>"], ["a b", "ab c"]
    tokens = [*specials, *BYTE_TO_UNICODE.values(), "ab", "abc"]
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=len(tokens), block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                              n_inner=48, rope_theta=1e5, tie_word_embeddings=True))

    def tokenizer_keys(writer):
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("smollm")
        writer.add_token_list(tokens)
        writer.add_token_types([3, 3] + [1] * (len(tokens) - 2))
        writer.add_token_merges(merges)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(1)
        writer.add_chat_template(TEMPLATE)
    return write_gguf(model, path, tokenizer_keys)


@pytest.fixture(scope="module")
def from_gguf(workdir):
    """(GGUF file, OUT, what the command printed)."""
    path = write_chat_gguf(workdir / "chat.gguf")
    status, printed = run_export(path, workdir / "chat-hf")
    assert status == 0, printed
    return path, workdir / "chat-hf", printed


def test_a_trained_llama_loads_in_transformers_with_the_same_logits(trained):
    checkpoint, out = trained
    from minilm import from_pretrained
    from minilm.training.checkpoint import load_checkpoint, saved_model
    state_dict, config, _ = load_checkpoint(checkpoint, with_train_state=False)
    ours = saved_model(checkpoint, config, state_dict).eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    assert type(theirs).__name__ == "LlamaForCausalLM" and type(from_pretrained(out)) is Llama
    ids = torch.randint(0, ours.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max().item() <= TOL


def test_a_trained_llamas_tokenizer_gives_minilms_ids_in_transformers(trained):
    checkpoint, out = trained
    ours, theirs = load_tokenizer(checkpoint / "tokenizer"), transformers.AutoTokenizer.from_pretrained(out)
    assert [theirs(text)["input_ids"] for text in TEXTS] == [ours.encode(text) for text in TEXTS]


def test_a_gguf_llama_loads_in_transformers_with_the_same_logits(from_gguf):
    path, out, _ = from_gguf
    ours = load_gguf(path)
    theirs = transformers.LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max().item() <= TOL


def test_a_gguf_tokenizer_goes_out_as_tokenizer_json_with_its_chat_template(from_gguf):
    path, out, printed = from_gguf
    ours, theirs = tokenizer_from_gguf(path), transformers.AutoTokenizer.from_pretrained(out)
    assert "tokenizer.json" in printed and (out / "tokenizer.json").is_file()
    assert [theirs(text)["input_ids"] for text in TEXTS] == [ours.encode(text) for text in TEXTS]
    expected = ours.encode(render_chat(TEMPLATE, MESSAGES, add_generation_prompt=True), special="allow")
    got = theirs.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(got) == expected


def test_the_exported_config_names_the_chat_models_bos_and_eos(from_gguf):
    _, out, _ = from_gguf
    config = json.loads((out / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (0, 1)  # <|im_start|>, <|im_end|>
