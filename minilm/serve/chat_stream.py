"""An answer's text as its tokens arrive: whole characters only, and cut before any stop string.

Two things make "decode what came so far, send what is new" wrong for a chat stream:

    a character split over tokens   byte-level BPE works on bytes, and a token may end inside a UTF-8
                                    character ("é" is two bytes, an emoji four); decoding such a token alone
                                    gives U+FFFD. An incremental UTF-8 decoder keeps the unfinished bytes
                                    until the token that completes them arrives.
    a stop string split over tokens the client asked to stop at "\\n\\nUser:", say, and must never see it; but
                                    the model writes it a few characters at a time. Text that could be the
                                    beginning of a stop string is held back until the next tokens show
                                    whether it is one (then the answer ends before it) or not (then it is sent).

    answer = AnswerText(tokenizer.decode_bytes, stop=["\\n\\nUser:"])
    answer.add(token_id) -> the text that may be sent now ("" while held back); answer.stopped: a stop string came
    answer.finish()      -> what was held back, at the end of the answer (no stop string came)
    answer.text          -> the whole answer so far, as sent
"""

import codecs


class AnswerText:
    def __init__(self, decode_bytes, stop: list[str] = ()):
        self.decode_bytes = decode_bytes  # token ids -> their bytes (BPETokenizer.decode_bytes)
        self.stop = [s for s in stop if s]
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # keeps a split character's bytes
        self.decoded = ""  # every whole character decoded so far
        self.sent = 0  # how much of decoded has been handed out
        self.stopped = False  # a stop string was found: the answer ends at sent

    @property
    def text(self) -> str:
        return self.decoded[:self.sent]

    def add(self, token_id: int) -> str:
        """Decode one more token; return the new text that is safe to send."""
        if self.stopped:
            return ""
        self.decoded += self.decoder.decode(self.decode_bytes([token_id]))
        return self._release(final=False)

    def finish(self) -> str:
        """The answer ended (end-of-turn token, max_tokens, ...): what was held back is sent after all,
        cut before a stop string if one is complete in it."""
        if self.stopped:
            return ""
        self.decoded += self.decoder.decode(b"", final=True)  # unfinished bytes at the very end: U+FFFD
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        start = self.sent
        # A stop string cannot begin before `sent`: at each release what could still become one was held back.
        found = [i for i in (self.decoded.find(s, start) for s in self.stop) if i >= 0]
        if found:
            self.sent, self.stopped = min(found), True
        else:
            self.sent = len(self.decoded) - (0 if final else self._held_back())
        return self.decoded[start:self.sent]

    def _held_back(self) -> int:
        """The length of the longest end of the text that is the beginning of a stop string (but not all of it)."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(self.decoded) - self.sent), longest, -1):
                if self.decoded.endswith(stop[:n]):
                    longest = n
                    break
        return longest
