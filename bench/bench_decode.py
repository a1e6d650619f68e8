"""Decoding speed on CPU: minilm's Llama against transformers' LlamaForCausalLM on the same float32 weights
(SmolLM2-135M-Instruct, both read from the smollm2-gguf asset), in one process, the runs interleaved so that
a busy machine slows both alike. Then the memory the KV cache holds, with grouped-query attention and without.

    python -m bench.bench_decode                          # every part, 2 threads, 3 rounds
    python -m bench.bench_decode --parts decode --rounds 5 --json out/bench_decode.json
    python -m bench.bench_decode --threads 1     # on a busy machine: there two threads mostly wait for each other

parts (each timed for both libraries, written-out attention ("eager") and torch's fused kernel ("sdpa")):
    load     seconds to read the GGUF: minilm's load_gguf, the same with the old random initialisation first,
             transformers' from_pretrained(folder, gguf_file=...)
    decode   one chat prompt, greedy, 128 new tokens: new tokens / wall time of generate (prefill included)
    prefill  a ~200-token prompt, one new token: prompt tokens / time to the first token
    batch    16 chat prompts, left padded, greedy, 128 new tokens each: all new tokens / wall time
    memory   bytes held by the KV cache after a 2,048-token prefill at SmolLM2's shape, random weights:
             3 key/value heads (GQA, as SmolLM2) against 9 (one per query head)

Each timing part prints per-round figures, then the medians and minilm / transformers. The greedy tokens of
the two libraries are compared too (a speed-up that changed the answers would not count).
"""

import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

import torch

from minilm.model.attention import KVCache

PARTS = ("load", "decode", "prefill", "batch", "memory")
IMPLS = {"eager": ("manual", "eager"), "sdpa": ("sdpa", "sdpa")}  # name -> (minilm attn_impl, transformers')
NEW_TOKENS = 128
DECODE_PROMPT = "Write a short story about a robot who learns to paint."
PREFILL_TEXT = (  # ~200 tokens once in the chat template
    "Summarise the following paragraph in one sentence. The history of the printing press begins in the "
    "fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based inks and a wooden "
    "press adapted from those used to make wine. Before his workshop in Mainz, books in Europe were copied by "
    "hand, which made them rare and expensive, and errors crept in with every copy. Printing changed that: a "
    "single press could produce thousands of pages a day, prices fell, and within fifty years presses were "
    "running in more than two hundred cities. Scholars could compare identical copies of a text, news and "
    "pamphlets spread quickly, and literacy rose. Historians still argue about how much of the Renaissance, "
    "the Reformation and the scientific revolution the press caused, but few doubt it sped all three up.")
BATCH_PROMPTS = [
    "What is the capital of France?", "Name three primary colours.", "How do plants make food?",
    "Give me a tip for learning to cook.", "What is 12 times 7?", "Why is the sky blue?",
    "Tell me a joke about cats.", "What does a computer's CPU do?", "Suggest a name for a goldfish.",
    "How far away is the Moon?", "What is the boiling point of water?", "Write a haiku about autumn.",
    "Explain what a noun is.", "What should I pack for a day at the beach?", "Who wrote Romeo and Juliet?",
    "How do I keep a houseplant alive?",
]


def load_models(transformers_folder: str | None):
    """minilm's Llama, transformers' model and the tokenizer, all in float32 eval mode; load seconds of each."""
    from data.assets import fetch
    from minilm.gguf import load_gguf
    from tokenizer.gguf_vocab import tokenizer_from_gguf
    path = fetch("smollm2-gguf")
    start = time.perf_counter()
    minilm_model = load_gguf(path)
    minilm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    hf_model = load_transformers(path, transformers_folder)
    hf_seconds = time.perf_counter() - start
    return minilm_model, hf_model, tokenizer_from_gguf(path), {"minilm": minilm_seconds, "transformers": hf_seconds}


def load_transformers(gguf_path: Path, folder: str | None):
    import transformers
    from transformers import AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if folder:  # e.g. written by minilm.hf.save_pretrained from the same GGUF: quicker to load
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    model.generation_config.eos_token_id = None  # else generate stops at <|im_end|> even when told eos None
    return model.eval()


def set_attention(minilm_model, hf_model, impl: str) -> None:
    minilm_impl, hf_impl = IMPLS[impl]
    for block in minilm_model.blocks:
        block.attn.attn_impl = minilm_impl
    hf_model.set_attn_implementation(hf_impl)


def chat_ids(tokenizer, text: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T_max) ids with padding on the left, and the attention mask (0 on the padding)."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return ids, mask


def generate(lib: str, model, ids, mask, new_tokens: int) -> torch.Tensor:
    """Greedy, exactly new_tokens per row (no stop at the end token, so both do the same work): (B, new)."""
    if lib == "minilm":
        return model.generate(ids, new_tokens, temperature=0.0, attention_mask=mask)[:, ids.size(1):]
    from transformers import GenerationConfig
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    out = model.generate(ids, attention_mask=mask if mask is not None else torch.ones_like(ids),
                         generation_config=config)  # under torch.no_grad, as minilm's generate
    assert out.size(1) == ids.size(1) + new_tokens, "transformers stopped early: both must do the same work"
    return out[:, ids.size(1):]


def timed(fn):
    """fn's wall seconds, its CPU seconds (this process's, all threads) and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def speed_part(name: str, models: dict, runners: dict, ids, mask, new_tokens: int, tokens_counted: int,
               rounds: int) -> dict:
    """Rounds of runners x (eager, sdpa), interleaved: tokens_counted per wall second, and per CPU second (on a
    busy machine a process waits for the CPU; its CPU time counts only while it runs). runners: name ->
    fn(ids, mask, new_tokens) -> new ids; "transformers" is the one the others are compared with."""
    runs, answers = {"wall": {}, "cpu": {}}, {}
    for run in runners.values():  # warm-up: first calls allocate and pick kernels
        for impl in IMPLS:
            set_attention(models["minilm"], models["transformers"], impl)
            run(ids[:1, -8:], None, 1)
    for round_ in range(rounds):
        names = list(runners) if round_ % 2 == 0 else list(runners)[::-1]  # alternate who goes first
        for impl in IMPLS:
            set_attention(models["minilm"], models["transformers"], impl)
            for runner in names:
                wall, cpu, tokens = timed(lambda: runners[runner](ids, mask, new_tokens))
                key = f"{runner} {impl}"
                runs["wall"].setdefault(key, []).append(tokens_counted / wall)
                runs["cpu"].setdefault(key, []).append(tokens_counted / cpu)
                answers[key] = tokens
                print(f"  {name} round {round_ + 1} {key:40s} {tokens_counted / wall:8.1f} tokens/s, "
                      f"{tokens_counted / cpu:8.1f} per CPU second (load {os.getloadavg()[0]:.1f})", flush=True)
    medians = {clock: {key: statistics.median(values) for key, values in per_key.items()}
               for clock, per_key in runs.items()}
    ratios, agree = {"wall": {}, "cpu": {}}, {}
    for impl in IMPLS:
        reference = f"transformers {impl}"
        print(f"{name} {impl}: transformers {medians['wall'][reference]:.1f} tokens/s, "
              f"{medians['cpu'][reference]:.1f} per CPU second (medians of {rounds})", flush=True)
        for runner in runners:
            key = f"{runner} {impl}"
            if runner == "transformers":
                continue
            for clock in runs:
                ratios[clock][key] = medians[clock][key] / medians[clock][reference]
            agree[key] = torch.equal(answers[key], answers[reference])
            print(f"{name} {impl}: {runner} {medians['wall'][key]:.1f} tokens/s, ratio {ratios['wall'][key]:.3f}; "
                  f"per CPU second {medians['cpu'][key]:.1f}, ratio {ratios['cpu'][key]:.3f}; same greedy tokens as "
                  f"transformers: {agree[key]}", flush=True)
    return {"tokens_per_s": runs, "medians": medians, "ratio_to_transformers": ratios, "same_tokens": agree,
            "shape": list(ids.shape), "new_tokens": new_tokens}


def load_part(rounds: int) -> dict:
    """load_gguf now (the model built on the meta device, the file's tensors assigned) against the way it was
    (a Llama drawn at random, then the file's tensors copied in), interleaved."""
    from common.gguf import read_gguf
    from data.assets import fetch
    from minilm.gguf import llama_config, llama_state_dict, load_gguf
    from minilm.model.llama import Llama

    def random_init_then_copy():
        gguf_file = read_gguf(path)
        config = llama_config(gguf_file)
        model = Llama(config)
        state = llama_state_dict(gguf_file, config)
        state["lm_head.weight"] = state["wte.weight"]
        model.load_state_dict(state)
        return model

    path = fetch("smollm2-gguf")
    runs = {"load_gguf": [], "random init, then copy": []}
    ways = {"load_gguf": lambda: load_gguf(path), "random init, then copy": random_init_then_copy}
    for round_ in range(rounds):
        for way in (list(ways) if round_ % 2 == 0 else list(ways)[::-1]):
            runs[way].append(timed(ways[way])[0])
        print(f"  load round {round_ + 1}: load_gguf {runs['load_gguf'][-1]:.1f} s, random init then copy "
              f"{runs['random init, then copy'][-1]:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    medians = {key: statistics.median(values) for key, values in runs.items()}
    print(f"load: load_gguf {medians['load_gguf']:.1f} s, random init then copy "
          f"{medians['random init, then copy']:.1f} s (medians of {rounds})", flush=True)
    return {"seconds": runs, "medians": medians}


def cache_bytes(cache) -> dict:
    """What a KVCache holds: the sum of its tensors' sizes, and of the distinct storages behind them."""
    tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return {"tensor_bytes": sum(t.numel() * t.element_size() for t in tensors),
            "storage_bytes": sum(storages.values()), "key_shape": list(tensors[0].shape)}


def memory_part(n_tokens: int = 2048) -> dict:
    """The KV cache after an n_tokens prefill, SmolLM2's shape with random weights, 3 and 9 key/value heads."""
    from minilm.model.config import LlamaConfig
    from minilm.model.llama import Llama
    result = {}
    for n_kv_head in (3, 9):
        torch.manual_seed(0)
        config = LlamaConfig.preset("smollm2-135m", n_kv_head=n_kv_head, attn_impl="sdpa")
        model = Llama(config).eval()
        cache = KVCache(config.n_layer)
        with torch.no_grad():
            model(torch.randint(config.vocab_size, (1, n_tokens)), kv_cache=cache)
        result[f"{n_kv_head} kv heads"] = row = cache_bytes(cache)
        print(f"memory: {n_kv_head} kv heads, {n_tokens} tokens: cache {row['tensor_bytes'] / 2**20:.1f} MiB "
              f"({row['tensor_bytes']:,} bytes; storages {row['storage_bytes']:,}); keys per layer "
              f"{tuple(row['key_shape'])}", flush=True)
        del model, cache
    ratio = result["9 kv heads"]["tensor_bytes"] / result["3 kv heads"]["tensor_bytes"]
    print(f"memory: without GQA the cache is {ratio:.2f}x larger", flush=True)
    return {"n_tokens": n_tokens, **result, "ratio": ratio}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each library and attention")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--transformers_folder", help="load transformers' model from this Hugging Face folder "
                        "(e.g. written by minilm.hf.save_pretrained from the same GGUF) instead of the GGUF")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "torch": torch.__version__, "load_average_start": os.getloadavg()}
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()}", flush=True)
    if "load" in args.parts:
        results["load"] = load_part(args.rounds)
    if {"decode", "prefill", "batch"} & set(args.parts):
        minilm_model, hf_model, tokenizer, seconds = load_models(args.transformers_folder)
        print(f"loaded: minilm {seconds['minilm']:.1f} s, transformers {seconds['transformers']:.1f} s", flush=True)
        results["model_load_seconds"] = seconds
        models = {"minilm": minilm_model, "transformers": hf_model}
        runners = {lib: functools.partial(generate, lib, model) for lib, model in models.items()}
        if "decode" in args.parts:
            ids = torch.tensor([chat_ids(tokenizer, DECODE_PROMPT)])
            results["decode"] = speed_part("decode", models, runners, ids, None, NEW_TOKENS, NEW_TOKENS, args.rounds)
        if "prefill" in args.parts:
            ids = torch.tensor([chat_ids(tokenizer, PREFILL_TEXT)])
            results["prefill"] = speed_part("prefill", models, runners, ids, None, 1, ids.size(1), args.rounds)
        if "batch" in args.parts:
            ids, mask = left_padded([chat_ids(tokenizer, text) for text in BATCH_PROMPTS], pad_id=0)
            results["batch"] = speed_part("batch", models, runners, ids, mask, NEW_TOKENS, NEW_TOKENS * ids.size(0),
                                          args.rounds)
        del minilm_model, hf_model, models
    if "memory" in args.parts:
        results["memory"] = memory_part()
    results["load_average_end"] = os.getloadavg()
    print(f"load average at the end {os.getloadavg()}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
