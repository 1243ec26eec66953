#!/usr/bin/env python3
"""Makes conversations with known turns for diarization tests and the benchmark.

Each conversation has two or three speakers with clearly different voices (espeak-ng
voice variants, then sox pitch and tempo changes), taking turns of one or two sentences,
with one stretch where two talk at once and one speaker who comes back after a long
pause. For each NAME it writes NAME.wav (16 kHz mono) and NAME.rttm, the reference turns
(RTTM: `SPEAKER NAME 1 START DURATION <NA> <NA> WHO <NA> <NA>`), trimmed to the speech.

    scripts/diarization-corpus.py OUT_DIR [--count 20] [--seed 7]
    scripts/diarization-corpus.py OUT_DIR --solo VOICE [--seed 7]

--solo writes OUT_DIR/VOICE.wav: that voice alone saying four sentences (an enrolment clip
for `hotfolderd speakers enroll`). Voices: ann, bob, cid, dee.

Needs espeak-ng and sox (scripts/deps.sh installs both). Deterministic for a seed.
"""

import argparse
import array
import os
import random
import subprocess
import tempfile
import wave

RATE = 16000

# (espeak-ng voice, sox pitch in cents, sox tempo): far apart in pitch and timbre.
VOICES = {
    "ann": ("en-us+f2", 300, 1.05),
    "bob": ("en-gb+m3", -400, 0.92),
    "cid": ("en-us+m7", 0, 1.12),
    "dee": ("en-gb-scotland+f4", 650, 0.98),
}

SENTENCES = [
    "I think we should ship the release on Thursday.",
    "The numbers from last week look much better than expected.",
    "Can you send me the report before the meeting?",
    "We still have two open bugs in the upload path.",
    "That sounds fine to me, as long as the tests pass.",
    "Let us talk about the budget for the next quarter.",
    "The customer asked for a copy of the transcript.",
    "I will call the supplier again tomorrow morning.",
    "Nobody has looked at the server logs yet.",
    "The new model is faster on long recordings.",
    "Please write the summary and share it with the team.",
    "We moved the office party to the end of the month.",
    "The train was late again, so I missed the first talk.",
    "Do we have enough disk space for the archive?",
    "I agree, but the deadline is very close.",
    "Could you repeat the last part of that question?",
]


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def utterance(tmp, voice, text, n):
    """One sentence in `voice`, trimmed of silence at both ends: 16-bit mono samples."""
    name, pitch, tempo = VOICES[voice]
    raw = os.path.join(tmp, f"raw{n}.wav")
    out = os.path.join(tmp, f"utt{n}.wav")
    run(["espeak-ng", "-v", name, "-s", "160", "-w", raw, text])
    run([
        "sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", out,
        "pitch", str(pitch), "tempo", str(tempo),
        "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
    ])
    with wave.open(out) as w:
        return list(memoryview(w.readframes(w.getnframes())).cast("h"))


def conversation(tmp, rng, index):
    speakers = rng.sample(sorted(VOICES), rng.choice([2, 2, 3]))
    turns = []  # (start, end, who, samples)
    clock = 0.5
    order = [speakers[i % len(speakers)] for i in range(rng.randint(6, 9))]
    # One speaker (the first) says nothing after the first turns, then comes back at the
    # end after a long pause.
    returning = speakers[0]
    first_third = len(order) // 3
    order = [w for i, w in enumerate(order) if w != returning or i <= first_third] + [returning]
    overlap_at = rng.randint(2, len(order) - 2)
    n = 0
    for i, who in enumerate(order):
        text = " ".join(rng.sample(SENTENCES, rng.choice([1, 1, 2])))
        samples = utterance(tmp, who, text, f"{index}-{n}")
        n += 1
        length = len(samples) / RATE
        if i == overlap_at and turns:
            # Starts while the one before is still talking: a stretch of both at once.
            start = max(turns[-1][0] + 0.3, turns[-1][1] - min(1.2, length / 2))
        elif i == len(order) - 1:
            start = clock + 6.0
        else:
            start = clock + rng.uniform(0.3, 0.8)
        turns.append((start, start + length, who, samples))
        clock = max(clock, start + length)
    total = int((clock + 0.5) * RATE)
    mix = [0] * total
    for start, _, _, samples in turns:
        at = int(start * RATE)
        for j, v in enumerate(samples):
            mix[at + j] += v
    mix = [max(-32768, min(32767, v)) for v in mix]
    return turns, mix


def write_wav(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(array.array("h", samples).tobytes())


def solo(tmp, rng, voice):
    """Four sentences in `voice`, with short pauses between them."""
    out = [0] * (RATE // 2)
    for n, text in enumerate(rng.sample(SENTENCES, 4)):
        out += utterance(tmp, voice, text, f"solo-{n}") + [0] * int(RATE * rng.uniform(0.4, 0.9))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--solo", choices=sorted(VOICES))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    if args.solo:
        with tempfile.TemporaryDirectory() as tmp:
            write_wav(os.path.join(args.out, args.solo + ".wav"), solo(tmp, rng, args.solo))
        print(f"{args.solo} alone in {args.out}/{args.solo}.wav")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            name = f"conv{i:02d}"
            turns, mix = conversation(tmp, rng, i)
            write_wav(os.path.join(args.out, name + ".wav"), mix)
            with open(os.path.join(args.out, name + ".rttm"), "w") as f:
                for start, end, who, _ in turns:
                    f.write(f"SPEAKER {name} 1 {start:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>\n")
    print(f"{args.count} conversations in {args.out}")


if __name__ == "__main__":
    main()
