"""SmolLM2 read by minilm and by transformers from the same GGUF file: greedy answers of 64 tokens to 8 chat
prompts, compared token by token (tests/test_smollm2.py is the 16-token version the suite runs).

    python -m bench.bench_smollm2_parity                      # 64 tokens, 8 prompts, 1 thread
    python -m bench.bench_smollm2_parity --new_tokens 128 --json out/smollm2_parity.json

For each prompt: minilm with the KV cache, minilm without it (every step reruns the whole sequence), the
prompt in a left-padded batch of all 8, and transformers' greedy generate; the largest |Δ| of the prompt's
logits between the two libraries. No answer stops at the end token here, so every run writes the same
number of tokens; where two runs differ, the first position that differs is printed.
"""

import argparse
import json
import time
from pathlib import Path

import torch

PROMPTS = [  # answers that run long, so the comparison stays inside the answer
    "Write a short story about a robot who learns to paint.",
    "Explain how a rainbow forms.",
    "What are the benefits of regular exercise? Give details.",
    "Describe the water cycle step by step.",
    "Write a poem about the city at night.",
    "How does a computer store numbers? Explain for a beginner.",
    "Give me a recipe for pancakes, with every step.",
    "Why do leaves change colour in autumn?",
]


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    """The first position where two (T,) id sequences differ, or None when they are equal."""
    different = (a != b).nonzero()
    return None if len(different) == 0 else int(different[0, 0])


def transformers_greedy(hf_model, ids, new_tokens: int) -> torch.Tensor:
    from transformers import GenerationConfig
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        return hf_model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)[0, ids.size(1):]


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.tensor([[0] * (width - len(row)) + row for row in rows])  # (B, width)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return ids, mask


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the comparison here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, logging
    from data.assets import fetch
    from minilm.gguf import load_gguf
    from tokenizer.gguf_vocab import tokenizer_from_gguf
    logging.set_verbosity_error()
    path = fetch("smollm2-gguf")
    model, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    hf_model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    hf_model.generation_config.eos_token_id = None  # else generate stops at <|im_end|> even when told eos None

    rows = [tokenizer.apply_chat_template([{"role": "user", "content": text}]) for text in PROMPTS]
    batch_ids, batch_mask = left_padded(rows)
    start = time.perf_counter()
    batched = model.generate(batch_ids, args.new_tokens, temperature=0.0, attention_mask=batch_mask)
    batched = batched[:, batch_ids.size(1):]  # (8, new_tokens)
    print(f"batch of {len(rows)} (left padded to {batch_ids.size(1)} tokens): {time.perf_counter() - start:.0f} s",
          flush=True)

    results = []
    for i, (text, row) in enumerate(zip(PROMPTS, rows)):
        ids = torch.tensor([row])
        with torch.no_grad():
            logits_diff = (model(ids)[0] - hf_model(ids).logits).abs().max().item()
        answers = {
            "cache": model.generate(ids, args.new_tokens, temperature=0.0)[0, ids.size(1):],
            "no cache": model.generate(ids, args.new_tokens, temperature=0.0, use_cache=False)[0, ids.size(1):],
            "batch": batched[i],
            "transformers": transformers_greedy(hf_model, ids, args.new_tokens),
        }
        differs = {name: first_difference(answers["cache"], tokens) for name, tokens in answers.items()
                   if name != "cache"}
        results.append({"prompt": text, "prompt_tokens": len(row), "max_abs_logits_diff": logits_diff,
                        "first_difference_from_cache": differs, "answer": tokenizer.decode(answers["cache"].tolist()),
                        "tokens": {name: tokens.tolist() for name, tokens in answers.items()}})
        agreement = ", ".join(f"{name}: {'same' if at is None else f'differs at {at}'}" for name, at in differs.items())
        print(f"{i + 1}. {text!r} ({len(row)} tokens): max |Δlogits| {logits_diff:.1e}; {agreement}", flush=True)
        print(f"   {results[-1]['answer'][:120]!r}", flush=True)

    summary = {name: sum(r["first_difference_from_cache"][name] is None for r in results) for name in differs}
    print(f"prompts whose {args.new_tokens} greedy tokens equal minilm's with the cache: " +
          ", ".join(f"{name} {count}/{len(results)}" for name, count in summary.items()) +
          f"; largest |Δlogits| {max(r['max_abs_logits_diff'] for r in results):.1e}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"new_tokens": args.new_tokens, "summary": summary,
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
