"""The customer-service assistant three ways, on the held-out questions (data/chatterbot_paraphrases.py):
retrieval only (the stored answer of the nearest question), SmolLM2 zero-shot (no retrieval) and SmolLM2 + RAG
(the k nearest pairs in the prompt, minilm/assistant/rag.py), all judged alike.

    python -m bench.bench_assistant_rag --json out/bench_assistant_rag.json --answers out/rag_answers.jsonl
    python -m bench.bench_assistant_rag --half test          # the test half only (odd positions): 41 + 15 questions
    python -m bench.bench_assistant_rag --rows retrieval,rag --limit 20      # fewer rows, the first 20 questions

The index holds the 718 questions of every category but the two held out (sports, history); the 83 reworded
questions ask indexed ones, the 30 held-out questions are out of domain. Columns:
    accuracy   share of the 83 answered with the right answer, by AnswerJudge (minilm/assistant/evaluation.py):
               the answer's MiniLM vector is nearest, among every stored answer, to one of the asked
               question's answers. A decline counts as wrong.
    declines   share of the 30 out-of-domain questions declined (the threshold, 0.55). Zero-shot never declines.
    latency    seconds per answer, mean and median over every question the row answered or declined, greedy
               decoding, one thread (what a decline costs is the retrieval alone); and the mean over the
               answers the decoder wrote (latency_written_mean_s)
--answers writes one JSON line per answer (question, answer, the judge's nearest stored answer, right) for
checking the judge by hand.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from common.atomic import write_text_atomic
from data.assets import model_path
from data.chatterbot import read_language, unique_questions
from data.chatterbot_paraphrases import HELD_OUT_CATEGORIES, PARAPHRASES
from minilm.assistant.assistant import THRESHOLD, UNKNOWN
from minilm.assistant.encoder import open_encoder
from minilm.assistant.evaluation import AnswerJudge
from minilm.assistant.knowledge import Knowledge, Pair
from minilm.assistant.rag import RagAssistant, Retriever, zero_shot
from minilm.chat.load import load_chat_model

ROWS = ("retrieval", "zero_shot", "rag")


def answer_fn(row: str, retriever: Retriever, chat, max_new_tokens: int):
    """question -> answer text for one row of the table."""
    if row == "retrieval":
        def retrieval(text):
            hits = retriever.search(text)
            return hits[0].pair.answer if hits else UNKNOWN
        return retrieval
    if row == "zero_shot":
        return lambda text: zero_shot(chat, text, max_new_tokens)
    rag = RagAssistant(retriever, chat, max_new_tokens)
    return lambda text: rag.reply(text).text


def run_row(row, answer, judge, queries, out_of_domain, answers_log) -> dict:
    seconds, right, declined, written = [], [], [], []
    for text, target in queries:
        start = time.perf_counter()
        reply = answer(text)
        seconds.append(time.perf_counter() - start)
        if row != "retrieval" and reply != UNKNOWN:
            written.append(seconds[-1])
        nearest, score = judge.nearest(reply)
        right.append(reply != UNKNOWN and nearest in target.answers)
        answers_log.append({"row": row, "question": text, "asks": target.text, "answer": reply,
                            "judge_nearest": nearest, "judge_score": round(score, 3), "right": right[-1],
                            "seconds": round(seconds[-1], 3)})
        print(f"[{row}] {'RIGHT' if right[-1] else 'wrong'} {text!r} -> {reply[:100]!r}", flush=True)
    if row != "zero_shot":  # zero-shot has no retrieval: it answers everything
        for text in out_of_domain:
            start = time.perf_counter()
            declined.append(answer(text) == UNKNOWN)
            seconds.append(time.perf_counter() - start)
    return {"accuracy": sum(right) / len(right), "right": sum(right), "asked": len(right),
            "declines": sum(declined) / len(declined) if declined else None, "out_of_domain": len(out_of_domain),
            "latency_mean_s": statistics.mean(seconds), "latency_median_s": statistics.median(seconds),
            "latency_written_mean_s": statistics.mean(written) if written else None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--model", default="smollm2", help="the chat model (an alias, a .gguf, a folder)")
    parser.add_argument("--k", type=int, default=3, help="stored pairs in the RAG prompt")
    parser.add_argument("--max_new_tokens", type=int, default=48, help="the longest answer")
    parser.add_argument("--half", choices=("all", "validation", "test"), default="all",
                        help="the questions at even (validation) or odd (test) positions of both lists")
    parser.add_argument("--limit", type=int, default=0, help="only the first N reworded and N held-out questions")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--answers", help="write every answer and its judgement here (.jsonl)")
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    torch.set_num_threads(args.threads)

    questions = unique_questions(read_language("english"))
    indexed = [q for q in questions if q.category not in HELD_OUT_CATEGORIES]
    by_text = {q.text: q for q in indexed}
    queries = [(text, by_text[original]) for text, original in PARAPHRASES]
    out_of_domain = [q.text for q in questions if q.category in HELD_OUT_CATEGORIES]
    if args.half != "all":
        start = 0 if args.half == "validation" else 1
        queries, out_of_domain = queries[start::2], out_of_domain[start::2]
    if args.limit:
        queries, out_of_domain = queries[:args.limit], out_of_domain[:args.limit]
    encoder = open_encoder(model_path("minilm-l6"), "minilm-l6")
    knowledge = Knowledge.build(encoder, "minilm-l6", [Pair(q.text, q.answers[0]) for q in indexed], THRESHOLD)
    retriever = Retriever(knowledge, encoder, args.k)
    judge = AnswerJudge(encoder, indexed)
    chat = load_chat_model(model_path(args.model)) if set(rows) - {"retrieval"} else None

    results, answers_log = {"config": vars(args), "indexed": len(indexed)}, []
    for row in rows:
        results[row] = run_row(row, answer_fn(row, retriever, chat, args.max_new_tokens), judge, queries,
                               out_of_domain, answers_log)
    print(f"\n{'row':10s} {'accuracy':>9s} {'declines':>9s} {'latency mean / median (s)':>27s}")
    for row in rows:
        r = results[row]
        declines = "-" if r["declines"] is None else f"{r['declines']:.1%}"
        latency = f"{r['latency_mean_s']:.2f} / {r['latency_median_s']:.2f}"
        print(f"{row:10s} {r['accuracy']:9.1%} {declines:>9s} {latency:>27s}")
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(results, indent=1) + "\n")
    if args.answers:
        write_text_atomic(Path(args.answers), "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers_log))
    return results


if __name__ == "__main__":
    main()
