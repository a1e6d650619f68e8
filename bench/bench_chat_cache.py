"""What reusing the KV cache across a chat's turns saves: SmolLM2 (the smollm2 asset) in a conversation of
several turns, each answer greedy, once with ChatSession's cache kept between turns and once reading the whole
conversation again at every turn; the two sessions take turns, so a busy machine slows both alike.

    python -m bench.bench_chat_cache                        # 6 turns, 48 new tokens each, 2 threads
    python -m bench.bench_chat_cache --turns 8 --json out/chat_cache.json

Per turn: the prompt's length, the tokens the first forward pass read, the time to the first token and to the
whole answer; the answers of the two sessions are compared (the cache must not change them).
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

from data.assets import model_path
from minilm.chat import ChatSession, load_chat_model

QUESTIONS = [
    "Hi! I'm planning a trip to Japan in the spring. Where should I start?",
    "What is the best way to get around between cities there?",
    "How much should I budget per day for food?",
    "Which foods should I try first?",
    "Any tips for visiting temples politely?",
    "What should I pack for the weather?",
    "Can you summarise your advice in three short points?",
    "Thanks! One last thing: how do I say thank you in Japanese?",
]


def one_turn(session: ChatSession, text: str, new_tokens: int) -> dict:
    """Time the first piece and the whole answer; count the tokens the first forward pass reads."""
    model, fed = session.chat.model, []
    forward = model.forward
    model.forward = lambda input_ids, **kw: (fed.append(input_ids.size(1)), forward(input_ids, **kw))[1]
    try:
        start, first, pieces = time.perf_counter(), None, []
        for piece in session.reply(text, max_new_tokens=new_tokens):
            first = first if first is not None else time.perf_counter() - start
            pieces.append(piece)
        return {"prompt_read": fed[0], "first_token_s": first, "answer_s": time.perf_counter() - start,
                "answer": "".join(pieces)}
    finally:
        del model.forward  # the class's forward again


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2", help="a chat model: a .gguf file, a folder or an alias")
    parser.add_argument("--turns", type=int, default=6, help=f"user messages (at most {len(QUESTIONS)})")
    parser.add_argument("--new_tokens", type=int, default=48, help="the longest answer, in tokens")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", help="write the per-turn figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chat = load_chat_model(model_path(args.model))
    sessions = {"reused": ChatSession(chat), "read again": ChatSession(chat)}
    sessions["read again"].reuse_cache = False
    rows = []
    for turn, text in enumerate(QUESTIONS[:args.turns], start=1):
        order = list(sessions) if turn % 2 else list(sessions)[::-1]  # alternate who goes first
        results = {name: one_turn(sessions[name], text, args.new_tokens) for name in order}
        same = results["reused"]["answer"] == results["read again"]["answer"]
        rows.append({"turn": turn, "same_answer": same, **{name: {k: v for k, v in r.items() if k != "answer"}
                                                          for name, r in results.items()}})
        r, a = results["reused"], results["read again"]
        print(f"turn {turn}: read {r['prompt_read']:4d} vs {a['prompt_read']:4d} tokens, first token "
              f"{r['first_token_s']:.2f} vs {a['first_token_s']:.2f} s, answer {r['answer_s']:.2f} vs "
              f"{a['answer_s']:.2f} s, same answer: {same} (load {os.getloadavg()[0]:.1f})", flush=True)
    total = {name: sum(row[name]["answer_s"] for row in rows) for name in sessions}
    print(f"whole conversation: {total['reused']:.1f} s with the cache reused, {total['read again']:.1f} s "
          f"reading it again ({total['read again'] / total['reused']:.2f}x)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"turns": rows, "total_s": total}, indent=1))


if __name__ == "__main__":
    main()
