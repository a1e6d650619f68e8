"""A varied, deterministic test corpus (> 200 KB) shared by the tokenizer parity tests, and checks on it.

Documents of each kind: English prose with contractions, source code, numbers, runs of spaces/tabs/newlines,
accented Latin, Chinese, Japanese, emoji (with joiners, skin tones, flags) and random unicode.
"""

import random
import unicodedata

WORDS = ("the quick brown fox jumps over lazy dog while a king of England walks to his castle and speaks "
         "softly about love war honour time money night day people world river garden letter answer "
         "question reason nothing something everyone tomorrow yesterday beautiful terrible wonderful").split()
CONTRACTIONS = ["don't", "I'm", "we'll", "they've", "she'd", "it's", "you're", "DON'T", "O'Brien", "rock'n'roll",
                "'tis", "ma'am", "y'all", "can't", "won't", "I'LL", "they'RE"]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += x[i] * 2;\n}\n",
    "if __name__ == \"__main__\":\n    main(sys.argv[1:])  # run\n",
    "const f = (x) => x ** 2; // square\nconsole.log(f(12));\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 21 GROUP BY name;\n",
    "<div class=\"box\">&nbsp;<a href='/x?y=1&z=2'>link</a></div>\n",
    "    x = {'k': [1, 2, 3], \"v\": None}\n\t\treturn x['k'][-1]\n",
]
ACCENTED = "café naïve résumé Ångström façade Øresund Žluťoučký kůň úpěl ďábelské ódy Ærøskøbing señor Über straße Çağ ĳssel œuvre"
CHINESE = "我们今天去公园散步，天气非常好。机器学习是人工智能的一个分支。你好，世界！这本书很有意思。"
JAPANESE = "今日はいい天気ですね。東京タワーに行きました。カタカナとひらがな、そして漢字。ありがとうございます！"
EMOJI = ["😀", "🥰", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "🏳️‍🌈", "🤖", "🧠", "✨", "🔥", "🫠", "👩🏿‍💻"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2003", "    \t\n"]


def random_unicode_char(rng: random.Random, stable: bool = False) -> str:
    """An assigned, non-surrogate, non-private character from anywhere in the first two planes.

    stable=True: only characters that Unicode 3.2 already had, with the same category as today. The
    tokenizers library's character tables predate Python's, so it disagrees on ~500 recent characters."""
    while True:
        c = chr(rng.randrange(0x20, 0x20000))
        category = unicodedata.category(c)
        if category not in ("Cn", "Cs", "Co") and (not stable or unicodedata.ucd_3_2_0.category(c) == category):
            return c


def prose(rng):
    words = [rng.choice(CONTRACTIONS) if rng.random() < 0.1 else rng.choice(WORDS) for _ in range(rng.randint(5, 40))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice([".", "!", "?", "...", ";", " --"]) + rng.choice(["\n", " ", "\n\n"])


def numbers(rng):
    items = [str(rng.randint(0, 10 ** rng.randint(1, 12))), f"{rng.uniform(-1e4, 1e4):.3f}", "1,000,000",
             f"+1 ({rng.randint(100, 999)}) 555-{rng.randint(1000, 9999)}", "2024-03-15", "3.14159e-10", "0x1F"]
    return " ".join(rng.sample(items, 4)) + "\n"


def spaces(rng):
    return "".join(rng.choice(WORDS + SPACES) for _ in range(20))


def emoji(rng):
    return " ".join(rng.choice(EMOJI) + rng.choice(["", "x", " ", "!"]) for _ in range(8)) + "\n"


def random_unicode(rng, stable=False):
    return "".join(random_unicode_char(rng, stable) if rng.random() < 0.8 else " " for _ in range(rng.randint(5, 40)))


def sample(rng, text, size):
    start = rng.randrange(0, max(1, len(text) - size))
    return text[start:start + size] + rng.choice(["\n", " ", ""])


GENERATORS = {
    "prose": prose, "numbers": numbers, "spaces": spaces, "emoji": emoji, "random": random_unicode,
    "code": lambda rng: rng.choice(CODE),
    "accented": lambda rng: sample(rng, ACCENTED, 40),
    "chinese": lambda rng: sample(rng, CHINESE, 20),
    "japanese": lambda rng: sample(rng, JAPANESE, 20),
}


def varied_documents(seed: int = 0, min_bytes: int = 210_000, stable_unicode: bool = False) -> list[str]:
    """Short documents cycling through every kind, until their UTF-8 size reaches ``min_bytes``."""
    rng = random.Random(seed)
    generators = dict(GENERATORS, random=lambda rng: random_unicode(rng, stable_unicode))
    documents, size = [], 0
    while size < min_bytes:
        for generate in generators.values():
            doc = "".join(generate(rng) for _ in range(rng.randint(1, 4)))
            documents.append(doc)
            size += len(doc.encode("utf-8"))
    return documents


def test_corpus_is_over_200_kilobytes():
    assert sum(len(d.encode("utf-8")) for d in varied_documents()) >= 200_000


def test_corpus_is_the_same_on_every_call():
    assert varied_documents() == varied_documents()


def test_stable_random_characters_are_known_to_unicode_3_2():
    text = "".join(random_unicode(random.Random(0), stable=True) for _ in range(200))
    assert all(unicodedata.ucd_3_2_0.category(c) != "Cn" for c in set(text))


def test_corpus_holds_every_script_and_whitespace_kind():
    text = "".join(varied_documents())
    for needle in ["don't", "\t\t", "   ", "é", "我", "カ", "👍🏽", "‍", "def ", "1,000,000"]:
        assert needle in text
