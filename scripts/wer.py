#!/usr/bin/env python3
"""Word error rate of transcripts against a reference script.

    scripts/wer.py REFERENCE.txt HYPOTHESIS.txt...

Prints one line per hypothesis: WER, its word count and the reference's. Words are compared
lowercased, without punctuation, with numbers written as words (whisper writes "40" for
"forty"), as the tests' own scorer does.
"""
import re
import sys

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
       "fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n):
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [ONES[n // 100], "hundred"] + (spell(n % 100) if n % 100 else [])
    if n < 1_000_000:
        return spell(n // 1000) + ["thousand"] + (spell(n % 1000) if n % 1000 else [])
    return [str(n)]


def words(text):
    out = []
    for w in re.findall(r"[a-z0-9']+", text.lower().replace(",", "")):
        out += spell(int(w)) if w.isdigit() else [w.strip("'")]
    return [w for w in out if w]


def wer(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] + [0] * len(hyp)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[-1] / max(len(ref), 1)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref = words(open(sys.argv[1]).read())
    for path in sys.argv[2:]:
        hyp = words(open(path).read())
        print(f"{path}: WER {wer(ref, hyp):.3f}, {len(hyp)} words ({len(ref)} in the script)")


if __name__ == "__main__":
    main()
