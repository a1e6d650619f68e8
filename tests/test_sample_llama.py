"""sample.py on the decoders beside GPT-2: a Llama checkpoint of train_gpt.py, a .gguf file (the tokenizer read
from the file), a Hugging Face Llama folder with a minilm tokenizer/ beside it, and the alias smollm2. Each
greedy sample is the model's own greedy continuation, cut before the model's end token. Tiny random models
stand in for real ones (the GGUF written here with the `gguf` package's writer); one slow test samples the real
SmolLM2 from the asset cache."""

import dataclasses
import hashlib

import gguf
import numpy as np
import pytest
import torch

import sample
from common.errors import run_command
from data import assets
from minilm import save_pretrained
from minilm.gguf import load_gguf
from minilm.model import Llama, LlamaConfig
from minilm.training.checkpoint import save_checkpoint
from test_chat import CHATML, byte_tokenizer
from test_gguf_load import gguf_name, hf_llama, llama_cpp_permute
from tokenizer import CharTokenizer
from tokenizer.byte_level import BYTE_TO_UNICODE
from tokenizer.gguf_vocab import tokenizer_from_gguf

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: Ay me!\n"
BYTES_AND_CHATML = 258  # the byte tokenizer of tests/test_chat.py: 256 bytes, <|im_start|>, <|im_end|> (eos)


def tiny_llama(vocab_size: int, seed: int = 0) -> Llama:
    """Tied, with init_std 0.3: at 0.02 a tiny tied model only repeats the last token, which would hide a wrong
    continuation."""
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                             n_inner=64, tie_word_embeddings=True, init_std=0.3)).eval()


def greedy_ids(model, ids: list[int], new_tokens: int, eos=()) -> list[int]:
    """The model's greedy continuation of ids without sample.py: the loop written out, no KV cache, stopping
    before an end token."""
    ids = torch.tensor([ids])  # (1, T)
    with torch.no_grad():
        for _ in range(new_tokens):
            next_id = model(ids)[0][:, -1].argmax(-1, keepdim=True)  # (1, 1)
            if next_id.item() in eos:
                break
            ids = torch.cat([ids, next_id], dim=1)
    return ids[0].tolist()


def greedy_text(model, tokenizer, prompt: str, new_tokens: int, eos=()) -> str:
    return tokenizer.decode(greedy_ids(model, tokenizer.encode(prompt), new_tokens, eos))


def sample_greedy(ckpt, prompt: str, new_tokens: int) -> str:
    return sample.main(["--ckpt", str(ckpt), "--device", "cpu", "--prompt", prompt, "--temperature", "0",
                        "--num_samples", "1", "--max_new_tokens", str(new_tokens)])[0]


def write_gguf_with_tokenizer(hf_model, path):
    """hf_model as llama.cpp's converter writes it (float32, q/k rows reordered, the tied head left out), with
    the byte tokenizer and ChatML's template in the metadata, <|im_end|> its eos, and one merge ("H" "e": id 258; an empty list of
    merges is not written)."""
    config = hf_model.config
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list([BYTE_TO_UNICODE[b] for b in range(256)] + ["<|im_start|>", "<|im_end|>", "He"])
    writer.add_token_merges(["H e"])
    writer.add_token_types([1] * 256 + [3, 3, 1])
    writer.add_eos_token_id(257)
    writer.add_chat_template(CHATML)  # a chat model, as SmolLM2 is (python -m minilm.chat takes it)
    for name, tensor in hf_model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied
        array = tensor.numpy().astype(np.float32)
        if name.endswith("q_proj.weight"):
            array = llama_cpp_permute(array, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            array = llama_cpp_permute(array, config.num_key_value_heads)
        writer.add_tensor(gguf_name(name), array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    model = hf_llama(vocab_size=BYTES_AND_CHATML + 1, num_key_value_heads=2, tie_word_embeddings=True,
                     initializer_range=0.3)  # not only the last token again (see tiny_llama)
    return write_gguf_with_tokenizer(model, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


# ------------------------------------------------------------------------------------ each kind of --ckpt

def test_a_llama_checkpoint_of_train_gpt_samples_its_greedy_continuation(tmp_path):
    tokenizer = CharTokenizer.train(TEXT)
    model = tiny_llama(tokenizer.vocab_size)
    config = {"model_class": "Llama", "model": model.config.to_dict(), "step": 10}  # as train_gpt.py lays it out
    save_checkpoint(tmp_path / "best", model, config, write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    assert sample_greedy(tmp_path / "best", "JULIET:", 20) == greedy_text(model, tokenizer, "JULIET:", 20)


def test_a_gguf_file_samples_with_the_tokenizer_in_the_file(gguf_file):
    model, tokenizer = load_gguf(gguf_file), tokenizer_from_gguf(gguf_file)
    expected = greedy_text(model, tokenizer, "Once upon", 12, eos=(257,))
    assert sample_greedy(gguf_file, "Once upon", 12) == expected


def test_a_hugging_face_llama_folder_samples_with_the_tokenizer_beside_it(tmp_path):
    model, tokenizer = tiny_llama(BYTES_AND_CHATML), byte_tokenizer()
    save_pretrained(model, tmp_path / "hf")
    tokenizer.save(tmp_path / "hf" / "tokenizer")
    assert sample_greedy(tmp_path / "hf", "Hello", 12) == greedy_text(model, tokenizer, "Hello", 12, eos=(257,))


def test_a_sample_stops_before_the_models_end_token(tmp_path):
    """Swapping two rows of the (tied) embedding relabels two tokens: the model then writes <|im_end|> (257)
    where it wrote the other one, and the sample must end there."""
    model, tokenizer = tiny_llama(BYTES_AND_CHATML), byte_tokenizer()
    prompt = tokenizer.encode("Hello")
    new = greedy_ids(model, prompt, 6)[len(prompt):]
    stop = next(token for token in new[1:] if token not in prompt)  # the token that becomes the end token
    swap = torch.arange(BYTES_AND_CHATML)
    swap[[stop, 257]] = swap[[257, stop]]
    with torch.no_grad():
        model.wte.weight.copy_(model.wte.weight[swap])  # the head is this same matrix
    save_pretrained(model, tmp_path / "hf")
    tokenizer.save(tmp_path / "hf" / "tokenizer")
    expected = prompt + [swap[token].item() for token in new[: new.index(stop)]]
    assert sample_greedy(tmp_path / "hf", "Hello", 6) == tokenizer.decode(expected)


def test_a_folder_of_neither_kind_names_what_to_pass(tmp_path, capsys):
    assert run_command(sample.main, ["--ckpt", str(tmp_path / "smollm3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint at") and ".gguf file" in err and "smollm2" in err


# ------------------------------------------------------------------------------------- the alias smollm2

def cache_as_smollm2(gguf_file, cache, monkeypatch) -> None:
    """Make gguf_file what the alias smollm2 names, through data/assets.py: the cached file is the asset when its
    sha256 is the pinned one (here the tiny file's, so nothing is downloaded)."""
    monkeypatch.setenv("MINILM_CACHE", str(cache))
    asset = assets.ASSETS[assets.GGUF_MODELS["smollm2"]]
    cached = cache / "assets" / asset.package.replace("==", "-") / asset.member
    cached.parent.mkdir(parents=True)
    cached.write_bytes(gguf_file.read_bytes())
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.ASSETS, assets.GGUF_MODELS["smollm2"], dataclasses.replace(asset, sha256=digest))


def test_the_alias_smollm2_samples_the_gguf_in_the_asset_cache(gguf_file, tmp_path, monkeypatch):
    cache_as_smollm2(gguf_file, tmp_path / "cache", monkeypatch)
    assert sample_greedy("smollm2", "Once upon", 12) == sample_greedy(gguf_file, "Once upon", 12)


@pytest.mark.slow
def test_sample_py_continues_text_with_the_real_smollm2():
    text = sample_greedy("smollm2", "The capital of France is", 8)
    assert text.startswith("The capital of France is") and "Paris" in text
