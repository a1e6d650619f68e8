"""Encoding speed of minilm's pure-Python tokenizers against tiktoken and Hugging Face tokenizers (Rust).

Families: GPT-2's BPE, BERT's WordPiece, and SmolLM2's BPE (read from its GGUF file; the HF reference runs the
tokenizer.json minilm writes for it, which the tests show gives the same ids).

The text is Shakespeare's 38 plays (the .md files under fetch("shakespeare-plays"), concatenated, ~5.3 MB).
Each play is encoded as one string, by each tokenizer in turn, repetitions interleaved; the median MB/s
(UTF-8 bytes per second) is reported, with the ratio minilm / reference (above 1.0: minilm is faster).
Every contender is single-threaded. minilm's tokenizers cache per word, so the first pass ("cold",
a fresh tokenizer) and later ones ("warm") are reported apart. Then "a 1 MB word": 1,000,000 random
base64 letters with no space, digit or symbol, so one pre-tokenised piece (what base64 blobs, DNA or
minified code look like), encoded by a fresh minilm GPT-2 and by tiktoken: the merge loop on one long
piece, where a quadratic algorithm would take most of an hour. Also timed: training a 4,096-piece BPE
and WordPiece vocabulary on the whole text.

    python -m bench.bench_tokenizers             # from the repo root; about a minute on 2 cores
    python -m bench.bench_tokenizers --repeats 5
"""

import argparse
import os
import random
import statistics
import string
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one thread, like the others

import tiktoken  # noqa: E402
import tiktoken.load  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import BertTokenizerFast, GPT2TokenizerFast  # noqa: E402

from data.assets import fetch  # noqa: E402
from tokenizer import BPETokenizer, WordPieceTokenizer, tokenizer_from_gguf, write_transformers_tokenizer  # noqa: E402
from tokenizer.byte_level import GPT2_PATTERN  # noqa: E402


def shakespeare_plays() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(fetch("shakespeare-plays").glob("*/*.md"))]


def megabytes_per_second(encode, plays: list[str]) -> float:
    size = sum(len(p.encode("utf-8")) for p in plays)
    start = time.perf_counter()
    for play in plays:
        encode(play)
    return size / (time.perf_counter() - start) / 1e6


def build_contenders(folder: str):
    """name -> (make_encoder, is_minilm). make_encoder() returns a fresh encode function."""
    ranks_path = str(fetch("gpt2-ranks"))
    gpt2 = BPETokenizer.from_tiktoken(ranks_path)
    gpt2.save(folder)  # GPT-2 vocab.json + merges.txt, for the HF reference
    ranks = tiktoken.load.load_tiktoken_bpe(ranks_path)
    tik = tiktoken.Encoding(name="gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    hf_gpt2 = GPT2TokenizerFast(vocab=f"{folder}/vocab.json", merges=f"{folder}/merges.txt").backend_tokenizer
    vocab_txt = str(fetch("bert-uncased-vocab"))
    hf_bert = BertTokenizerFast(vocab=vocab_txt, do_lower_case=True).backend_tokenizer
    smollm2 = tokenizer_from_gguf(fetch("smollm2-gguf"))
    write_transformers_tokenizer(smollm2, f"{folder}/smollm2", model_max_length=8192)
    hf_smollm2 = Tokenizer.from_file(f"{folder}/smollm2/tokenizer.json")

    def fresh_gpt2():
        gpt2.cache.clear()
        return gpt2.encode_ordinary

    def fresh_bert():
        return WordPieceTokenizer.from_vocab_file(vocab_txt).encode

    def fresh_smollm2():
        smollm2.cache.clear()
        return smollm2.encode_ordinary

    return {
        "bpe": {"minilm": fresh_gpt2, "tiktoken": lambda: tik.encode_ordinary,
                "hf tokenizers": lambda: lambda t: hf_gpt2.encode(t, add_special_tokens=False).ids},
        "wordpiece": {"minilm": fresh_bert,
                      "hf tokenizers": lambda: lambda t: hf_bert.encode(t, add_special_tokens=False).ids},
        "smollm2": {"minilm": fresh_smollm2,
                    "hf tokenizers": lambda: lambda t: hf_smollm2.encode(t, add_special_tokens=False).ids},
    }


def one_long_word(size: int = 1_000_000) -> str:
    """``size`` random base64 letters (A-Z, a-z: a digit, "+" or "/" would start a new pre-tokenised piece)."""
    return "".join(random.Random(0).choices(string.ascii_letters, k=size))


def time_long_word(encoders, repeats: int) -> None:
    """Seconds to encode one_long_word() with a fresh minilm GPT-2 (empty cache) and with tiktoken."""
    word = one_long_word()
    seconds = {}
    for name in ("minilm", "tiktoken"):
        times = []
        for _ in range(repeats):
            encode = encoders[name]()
            start = time.perf_counter()
            encode(word)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    megabytes = len(word.encode("utf-8")) / 1e6
    print(f"\na {megabytes:.0f} MB word (random base64 letters, one pre-tokenised piece): encode (median of {repeats})")
    for name, s in seconds.items():
        ratio = "" if name == "minilm" else f"   minilm/{name}: {s / seconds['minilm']:.3f}"
        print(f"  {name:14s} {s:7.3f} s   {megabytes / s:6.2f} MB/s{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plays = shakespeare_plays()
    print(f"corpus: {len(plays)} plays, {sum(len(p.encode()) for p in plays) / 1e6:.2f} MB")
    with tempfile.TemporaryDirectory() as folder:
        contenders = build_contenders(folder)
        for family, encoders in contenders.items():
            cold = {name: [] for name in encoders}
            warm = {name: [] for name in encoders}
            for _ in range(args.repeats):
                for name, make in encoders.items():
                    encode = make()
                    cold[name].append(megabytes_per_second(encode, plays))
                    warm[name].append(megabytes_per_second(encode, plays))
            minilm_cold, minilm_warm = statistics.median(cold["minilm"]), statistics.median(warm["minilm"])
            print(f"\n{family}: encode MB/s (median of {args.repeats})")
            for name in encoders:
                c, w = statistics.median(cold[name]), statistics.median(warm[name])
                ratio = "" if name == "minilm" else f"   minilm/{name}: cold {minilm_cold / c:.2f}, warm {minilm_warm / w:.2f}"
                print(f"  {name:14s} cold {c:6.2f}   warm {w:6.2f}{ratio}")
        time_long_word(contenders["bpe"], args.repeats)
    text = "".join(plays)
    for name, train in [("BPE", lambda: BPETokenizer.train(text, 4096)),
                        ("WordPiece", lambda: WordPieceTokenizer.train(text, 4096))]:
        start = time.perf_counter()
        tok = train()
        print(f"\ntrain {name} to {tok.vocab_size} ids on the whole text: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
