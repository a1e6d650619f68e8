"""SmolLM2's tokenizer, read from its GGUF file's metadata into tokenizer/'s byte-level BPE: the same ids as
transformers' tokenizer built from the same file, on the shared varied corpus (prose, code, numbers, CJK,
emoji, whitespace runs) with special tokens; the pre-tokenizer taken from tokenizer.ggml.pre; saving with a
checkpoint; its export as tokenizer.json + tokenizer_config.json, read by transformers' AutoTokenizer;
and, on tiny GGUF files written with gguf's writer, the errors for what it cannot read.

transformers splits SmolLM2's text with GPT-2's pattern alone (it has no entry for "smollm"), while SmolLM2's
own tokenizer and llama.cpp split digits off first: the two differ only where a run of whitespace comes
before a digit ("x  1"). So the vocabulary is checked against transformers with the split transformers uses,
and the "smollm" split against a `tokenizers` pipeline with SmolLM2's own pre-tokenizer (smollm2_reference.py).
"""

import random

import pytest
from smollm2_reference import gguf_path, smollm2_pipeline, transformers_tokenizer, write_tiny_gguf
from test_tokenizer_corpus import varied_documents

from common.errors import ConfigError, UserError
from data.tokenizers import named_tokenizer
from tokenizer import BPETokenizer, TokenizerFileError, load_tokenizer, write_transformers_tokenizer
from tokenizer.byte_level import GPT2_PATTERN
from tokenizer.gguf_vocab import tokenizer_from_gguf, tokenizer_from_metadata

SPECIAL_TEXTS = ["<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
                 "text<|endoftext|>more <|im_end|><|im_end|> <repo_name>x"]
# documents where a run of whitespace comes before a digit: the one place the two splits differ
SPACE_THEN_DIGIT = ["x  1", "in  2024", "a\n\n3", "total:\t\t42", "  7 at the start", "end   9", "x \u3000 5"]


@pytest.fixture(scope="module")
def smollm2() -> BPETokenizer:
    return tokenizer_from_gguf(gguf_path())


@pytest.fixture(scope="module")
def with_gpt2_split(smollm2) -> BPETokenizer:
    """The same vocabulary split as transformers splits it: GPT-2's pattern alone."""
    return BPETokenizer(smollm2.byte_ids, smollm2.merges, smollm2.special_tokens, GPT2_PATTERN)


@pytest.fixture(scope="module")
def documents() -> list[str]:
    # characters Unicode 3.2 already had: the tokenizers library's tables are older than Python's
    docs = varied_documents(stable_unicode=True)
    return docs + SPECIAL_TEXTS + SPACE_THEN_DIGIT


def first_mismatch(documents, ours, theirs):
    return next(((doc, ours(doc), theirs(doc)) for doc in documents if ours(doc) != theirs(doc)), None)


def test_vocabulary_gives_transformers_ids_on_varied_corpus(with_gpt2_split, documents):
    reference = transformers_tokenizer()
    assert first_mismatch(documents, lambda doc: with_gpt2_split.encode(doc, special="allow"), reference.encode) is None


def test_smollm_split_gives_smollm2_pipeline_ids_on_varied_corpus(smollm2, documents):
    reference = smollm2_pipeline()
    assert first_mismatch(documents, lambda doc: smollm2.encode(doc, special="allow"),
                          lambda doc: reference.encode(doc).ids) is None


def test_whole_corpus_at_once_gives_smollm2_pipeline_ids(smollm2, documents):
    text = "".join(documents)
    assert smollm2.encode(text, special="allow") == smollm2_pipeline().encode(text).ids


def test_pre_tokenizer_comes_from_the_file(smollm2, with_gpt2_split):
    """A run of spaces before a digit: "smollm" keeps it one piece, GPT-2's pattern gives its last space to
    the digit, which no merge joins, so the ids differ (and each matches its reference)."""
    for text in SPACE_THEN_DIGIT[:2]:
        assert smollm2.encode(text) != with_gpt2_split.encode(text)
        assert smollm2.encode(text) == smollm2_pipeline().encode(text).ids
        assert with_gpt2_split.encode(text) == transformers_tokenizer().encode(text)


def test_every_digit_is_its_own_token(smollm2):
    number = "".join(random.Random(0).choice("0123456789") for _ in range(40))
    ids = smollm2.encode(number)
    assert [smollm2.decode([i]) for i in ids] == list(number)


def test_special_tokens_in_text_become_their_ids(smollm2):
    ids = smollm2.encode(SPECIAL_TEXTS[0], special="allow")
    assert ids[0] == smollm2.special_ids["<|im_start|>"] and smollm2.special_ids["<|im_end|>"] in ids
    assert ids == transformers_tokenizer().encode(SPECIAL_TEXTS[0])


def test_special_tokens_and_roles_are_transformers_ones(smollm2):
    reference = transformers_tokenizer()
    specials = {token.content: i for i, token in reference.added_tokens_decoder.items() if token.special}
    assert smollm2.special_ids == specials and len(specials) == 17
    roles = {role: reference.convert_tokens_to_ids(getattr(reference, role)) for role in smollm2.roles}
    assert smollm2.roles == roles and set(roles) == {"bos_token", "eos_token", "unk_token", "pad_token"}
    assert smollm2.vocab_size == len(reference) == 49152


def test_decode_inverts_encode_on_varied_corpus(smollm2, documents):
    assert all(smollm2.decode(smollm2.encode(doc, special="allow")) == doc for doc in documents)


def test_a_byte_with_no_token_is_dropped_as_transformers_drops_it(smollm2):
    """SmolLM2 has no token for 21 bytes (0x04 among them): they vanish, and the bytes on either side of
    one may merge as if it were not there ("!\\x04!" is the one token "!!")."""
    assert 0x04 in smollm2.missing_bytes and len(smollm2.missing_bytes) == 21
    for text in ["!\x04!", "a\x04b", "\x04\x04", "x\U00045678y", "ab\x06cd"]:
        assert smollm2.encode(text) == transformers_tokenizer().encode(text) == smollm2_pipeline().encode(text).ids
    assert smollm2.encode("!\x04!") == smollm2.encode("!!")


def test_named_vocabulary_is_the_gguf_tokenizer(smollm2):
    named = named_tokenizer("smollm2")
    assert named.merges == smollm2.merges and named.chat_template == smollm2.chat_template


def test_saved_tokenizer_loads_back_whole(smollm2, documents, tmp_path):
    smollm2.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert (again.byte_ids, again.merges, again.special_ids) == (smollm2.byte_ids, smollm2.merges, smollm2.special_ids)
    assert (again.pattern, again.roles, again.chat_template) == (smollm2.pattern, smollm2.roles, smollm2.chat_template)
    text = "".join(documents[:300])
    assert again.encode(text, special="allow") == smollm2.encode(text, special="allow")


# ---- tiny GGUF files: what is read, and what is refused -------------------------------------------------

def test_tiny_gguf_merges_and_specials_are_read(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf", template="{{ eos_token }}")
    tok = tokenizer_from_gguf(tmp_path / "tiny.gguf")
    assert tok.vocab_size == 259 and tok.special_ids == {"<|end|>": 0} and tok.roles == {"eos_token": 0}
    assert tok.decode(tok.encode("abc")) == "abc" and len(tok.encode("abc")) == 1  # a+b, then ab+c
    assert tok.chat_template == "{{ eos_token }}"


def test_unknown_pre_tokenizer_is_an_error_naming_the_known_ones(tmp_path):
    write_tiny_gguf(tmp_path / "qwen.gguf", pre="qwen2")
    with pytest.raises(ConfigError, match=r"qwen\.gguf: unknown pre-tokenizer 'qwen2'; minilm knows gpt-2, smollm"):
        tokenizer_from_gguf(tmp_path / "qwen.gguf")


def test_missing_pre_tokenizer_is_an_error_not_a_gpt2_guess(tmp_path):
    write_tiny_gguf(tmp_path / "nopre.gguf", pre=None)
    with pytest.raises(TokenizerFileError, match="no tokenizer.ggml.pre"):
        tokenizer_from_gguf(tmp_path / "nopre.gguf")


def test_a_sentencepiece_vocabulary_is_refused(tmp_path):
    write_tiny_gguf(tmp_path / "spm.gguf", model="llama")
    with pytest.raises(TokenizerFileError, match="tokenizer.ggml.model is 'llama'"):
        tokenizer_from_gguf(tmp_path / "spm.gguf")


def test_a_bos_the_file_asks_for_is_refused_not_ignored(tmp_path):
    write_tiny_gguf(tmp_path / "bos.gguf", add_bos_token=True, bos_token_id=0)
    with pytest.raises(TokenizerFileError, match="add_bos_token"):
        tokenizer_from_gguf(tmp_path / "bos.gguf")


def test_a_merge_of_unknown_tokens_names_the_file_and_merge(tmp_path):
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": ["a", "b"],
                "tokenizer.ggml.token_type": [1, 1], "tokenizer.ggml.merges": ["a b"]}
    with pytest.raises(UserError, match="model.gguf merges, line 1: 'a b'"):
        tokenizer_from_metadata(metadata, where="model.gguf")


# ---- out to transformers: tokenizer.json + tokenizer_config.json ------------------------------------------

@pytest.fixture(scope="module")
def exported(smollm2, tmp_path_factory):
    """transformers' AutoTokenizer on the files minilm writes for SmolLM2's tokenizer."""
    from transformers import AutoTokenizer
    folder = tmp_path_factory.mktemp("smollm2_hf")
    assert write_transformers_tokenizer(smollm2, folder, model_max_length=8192) == \
        ["tokenizer.json", "tokenizer_config.json"]
    return AutoTokenizer.from_pretrained(folder)


def test_exported_files_give_minilm_ids_in_transformers(smollm2, exported, documents):
    assert first_mismatch(documents, lambda doc: smollm2.encode(doc, special="allow"), exported.encode) is None


def test_exported_files_decode_as_minilm_decodes(smollm2, exported, documents):
    ids = smollm2.encode("".join(documents[:200]), special="allow")
    assert exported.decode(ids) == smollm2.decode(ids)


def test_exported_files_carry_the_roles_and_the_chat_template(smollm2, exported):
    assert {role: exported.convert_tokens_to_ids(getattr(exported, role)) for role in smollm2.roles} == smollm2.roles
    messages = [{"role": "user", "content": "What is 2+2?"}]
    assert exported.apply_chat_template(messages, add_generation_prompt=True)["input_ids"] == \
        smollm2.apply_chat_template(messages)


def test_a_gpt2_split_bpe_without_roles_is_still_written_as_gpt2_files(tmp_path):
    tok = BPETokenizer.train("hello hello world", vocab_size=267)
    assert write_transformers_tokenizer(tok, tmp_path, model_max_length=64)[:2] == ["vocab.json", "merges.txt"]
