#!/usr/bin/env python3
"""Long-form test speech: several espeak-ng voices and speaking rates, pauses from a quarter
second to several seconds. On even multiples of 30 s (where whisper's windows start and end) a
short pause is centred; across odd ones runs one of ten distinctive sentences, each of which
must come out whole, exactly once.

    scripts/make-speech.py OUT_DIR [--minutes M] [--skip-minutes S]

Writes OUT_DIR/speech.wav (16 kHz mono s16), OUT_DIR/script.txt (what is said, in order) and
OUT_DIR/layout.json (each sentence's start and end in seconds, text, voice, rate and whether it
is one placed across a boundary). Needs
espeak-ng and sox. Deterministic: the same arguments give the same file.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave

RATE = 16000
BOUNDARY = 30.0

# Sentences the project's other tests and the README benchmark never use.
LONG = [
    "The harbour master counted forty ships waiting for the tide to turn before dawn.",
    "Every morning the baker opens the shop at six and sells bread until noon.",
    "Our new library card lets you borrow ten books and three films at a time.",
    "The mountain road was closed for two days after the heavy snow last week.",
    "She planted tomatoes, beans and sunflowers along the south wall of the garden.",
    "The orchestra will play a concert in the old church on Saturday evening.",
    "Engineers replaced the bridge cables one by one without stopping the traffic.",
    "Remember to water the plants while we are away on holiday in July.",
    "The children built a small boat from wood and sailed it on the pond.",
    "A strong wind from the west carried the smell of the sea into the town.",
    "The doctor asked him to rest for a week and drink plenty of water.",
    "Farmers in the valley expect a good harvest if the weather stays warm.",
    "The report explains why the project needs more time and a larger team.",
    "At the end of the day we walked home along the river under the stars.",
]

# One distinctive sentence per boundary: each must come out whole, exactly once.
BOUNDARY_SET = [
    "Seven purple kites drifted slowly over the frozen lake near the lighthouse.",
    "The clockmaker repaired a golden watch that had stopped ninety years ago.",
    "Hungry pelicans gathered on the wooden pier waiting for the fishermen.",
    "A violin teacher from Vienna played a melody nobody had heard before.",
    "Thunder rolled across the desert while the camels rested in the shade.",
    "The astronaut photographed a bright green aurora above the southern ocean.",
    "Our grandmother kept her recipes in a blue tin box under the stairs.",
    "Twelve cyclists climbed the steep pass before the sun melted the ice.",
    "The museum guard found a silver key hidden inside the marble statue.",
    "Dolphins followed the ferry all the way from the island to the harbour.",
]

VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland+m3"]
RATES = [135, 160, 185, 150, 175]
PAUSES = [0.3, 0.8, 1.5, 0.5, 2.5, 0.25, 4.0, 0.6, 1.1, 7.0, 0.4, 0.9]


def speak(tmp, i, text, voice, rate):
    raw = os.path.join(tmp, f"s{i}.raw.wav")
    out = os.path.join(tmp, f"s{i}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", raw, text], check=True)
    subprocess.run(["sox", "-q", "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", out, "gain", "-1"], check=True)
    with wave.open(out, "rb") as w:
        frames = w.readframes(w.getnframes())
    # espeak pads each utterance with silence: trim it, so the layout's times are the speech's.
    samples = memoryview(frames).cast("h")
    loud = [k for k in range(len(samples)) if abs(samples[k]) > 300]
    if not loud:
        return frames
    a, b = max(loud[0] - 160, 0), min(loud[-1] + 160, len(samples))
    return frames[2 * a:2 * b]


def silence(seconds):
    return b"\0\0" * int(round(seconds * RATE))


def build(minutes, tmp):
    pcm = bytearray()
    layout = []
    # The boundary sentences in the two clearest voices: what they test is where they fall.
    special_voice = lambda k: (VOICES[k % 2], 155)
    specials = [speak(tmp, f"b{k}", text, *special_voice(k)) for k, text in enumerate(BOUNDARY_SET)]
    t = 0.0
    i = 0
    distinct = 0

    def place(start, clip, text, voice, rate):
        nonlocal pcm
        pcm += silence(start - len(pcm) / 2 / RATE)
        pcm += clip
        end = len(pcm) / 2 / RATE
        layout.append({"start": round(start, 3), "end": round(end, 3), "text": text,
                       "voice": voice, "rate": rate, "across_boundary": text in BOUNDARY_SET})
        return end

    while len(pcm) / 2 / RATE < minutes * 60.0:
        b = (int(t // BOUNDARY) + 1) * BOUNDARY
        odd = int(b // BOUNDARY) % 2 == 1
        rep = i // len(LONG)
        voice = VOICES[(i + rep) % len(VOICES)]
        rate = RATES[(i * 3 + rep) % len(RATES)]
        clip = speak(tmp, i, LONG[i % len(LONG)], voice, rate)
        d = len(clip) / 2 / RATE
        pending = odd and distinct < len(specials)
        due = b - len(specials[distinct]) / 2 / RATE / 2 if pending else 0.0
        if pending and t + d + 0.3 > due:
            # Odd boundaries: a distinctive sentence centred on it (it must come out whole,
            # exactly once).
            k = distinct
            distinct += 1
            end = place(max(t, due), specials[k], BOUNDARY_SET[k], *special_voice(k))
            t = end + PAUSES[i % len(PAUSES)]
            continue
        shifted = not odd and b - 0.2 - 3.0 < t + d < b - 0.2
        # Even boundaries: the sentence is moved (by up to 3 s) to end just before it, and a
        # 0.4 s pause is centred on it.
        end = place(b - 0.2 - d if shifted else t, clip, LONG[i % len(LONG)], voice, rate)
        i += 1
        pause = 0.4 if shifted else PAUSES[i % len(PAUSES)]
        nb = (int(end // BOUNDARY) + 1) * BOUNDARY
        if int(nb // BOUNDARY) % 2 == 1 and distinct < len(specials):
            # Never pause past the point where the next boundary's sentence must start.
            pause = min(pause, max(0.3, nb - len(specials[distinct]) / 2 / RATE / 2 - end))
        t = end + pause
    pcm += silence(1.0)
    return bytes(pcm), layout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--skip-minutes", type=float, default=0.0,
                    help="generate this much more and leave it out from the start (a whole "
                         "number of 30 s windows, so the boundaries stay where they were)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pcm, layout = build(args.minutes + args.skip_minutes, tmp)
    skip = args.skip_minutes * 60.0
    if skip % BOUNDARY:
        sys.exit("make-speech: --skip-minutes must be a multiple of half a minute")
    # A sentence the cut runs through is silenced, not left half-spoken.
    for s in layout:
        if s["start"] < skip < s["end"]:
            a, b = int(round(skip * RATE)), int(round(s["end"] * RATE))
            pcm = pcm[:2 * a] + bytes(2 * (b - a)) + pcm[2 * b:]
    pcm = pcm[2 * int(round(skip * RATE)):]
    layout = [dict(s, start=round(s["start"] - skip, 3), end=round(s["end"] - skip, 3))
              for s in layout if s["start"] >= skip]
    with wave.open(os.path.join(args.out, "speech.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    with open(os.path.join(args.out, "script.txt"), "w") as f:
        f.write("\n".join(s["text"] for s in layout) + "\n")
    with open(os.path.join(args.out, "layout.json"), "w") as f:
        json.dump(layout, f, indent=1)
    words = sum(len(s["text"].split()) for s in layout)
    print(f"{args.out}/speech.wav: {len(pcm) / 2 / RATE:.1f} s, {len(layout)} sentences, "
          f"{words} words", file=sys.stderr)


if __name__ == "__main__":
    main()
