#!/usr/bin/env python3
"""Training benchmark (issue 19), run by scripts/bench-training.sh: the real daemon, the real
recipe, on CPU. Speech with known text goes into a watched folder that feeds a dataset; a
restart with a lower `train_after_hours` finds it crossed; the run trains, is converted,
scored and promoted (`promote = "always"`), and the daemon swaps the new model in. Measured
per mode:

- training samples/s (the recipe's own per-step `samples_per_second`, mean over steps);
- the time from the run's start (the threshold crossed: the journal's start of the run) to the
  new model serving (the daemon's "model swapped" line), and its phases.

A full fine-tune is the baseline; LoRA is measured against it in the same script.

    scripts/bench-training.py DAEMON PYTHON MODEL [--files N] [--steps S] [--batch B]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime

SENTENCES = [
    "The orchard keeper weighed twelve baskets of pears before the market opened.",
    "A quiet train crossed the valley while the fog lifted from the river.",
    "Please bring the blue folder and two pencils to the meeting on Thursday.",
    "The museum will close early today because the heating system is being repaired.",
    "Seven students painted the fence behind the school during the long weekend.",
    "Our neighbour plants tomatoes and beans in the garden every spring.",
    "The pilot announced a short delay while the runway was cleared of snow.",
    "Fresh coffee and warm bread were waiting for the climbers at the hut.",
    "The librarian sorted the returned books by colour before lunch.",
    "A small boat carried letters and medicine to the island once a week.",
    "The choir practised the new song three times before the concert began.",
    "Strong winds knocked over the market stalls early on Saturday morning.",
]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def stamp(line):
    """The RFC 3339 time a log line starts with, as seconds since the epoch."""
    text = ANSI.sub("", line).strip()
    at = text.split(" ", 1)[0].rstrip("Z")
    return datetime.fromisoformat(at + "+00:00").timestamp()


def speak(out, name, text):
    wav = os.path.join(out, name + ".wav")
    raw = wav + ".22k.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", wav], check=True)
    os.remove(raw)
    return wav


def fmt(wer):
    return "-" if wer is None else f"{wer:.3f}"


def sha256(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def seconds(wav):
    return (os.path.getsize(wav) - 44) / 32000.0


def one_mode(args, work, label, extra, wavs):
    d = os.path.join(work, label)
    inbox, out = os.path.join(d, "inbox"), os.path.join(d, "out")
    os.makedirs(inbox)
    recipe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "trainers",
                          "whisper_finetune.py")
    command = [args.python, os.path.abspath(recipe), "--max-steps", str(args.steps),
               "--batch-size", str(args.batch)] + extra
    config = os.path.join(d, "hotfolderd.toml")
    log_path = os.path.join(d, "daemon.log")

    def write_config(hours):
        with open(config, "w") as f:
            f.write(f"""[journal]
path = "{d}/state/journal.sqlite"
[asr]
model = "{args.model}"
threads = 2
language = "en"
[[watch]]
path = "{inbox}"
output = "{out}"
stable_for = "300ms"
[[dataset]]
name = "bench"
sources = ["{inbox}"]
path = "{d}/datasets/bench"
train_after_hours = {hours:.8f}
min_segment_seconds = 0.5
eval_fraction = 0.25
promote = "always"
[dataset.trainer]
command = {json.dumps(command)}
timeout = "1h"
gpu_policy = "{args.gpu_policy}"
""")

    def run_until(what, count):
        daemon = subprocess.Popen([args.daemon, "run", "--config", config],
                                  stdout=open(log_path, "a"), stderr=subprocess.STDOUT,
                                  env=dict(os.environ, NO_COLOR="1"))
        try:
            deadline = time.time() + 3600
            while open(log_path).read().count(what) < count:
                if daemon.poll() is not None or time.time() > deadline:
                    sys.exit(f"{label}: no {what!r}; see {log_path}")
                time.sleep(0.5)
        finally:
            daemon.terminate()
            daemon.wait()

    # First every file goes into the dataset, under a threshold nothing reaches; then a
    # restart with one the dataset has crossed: the run starts as the daemon sees it.
    write_config(1000.0)
    for wav, _ in wavs:
        shutil.copy(wav, inbox)
    run_until("worker: done", len(wavs))
    # A person's text for every input (the held-out ones are scored only on such labels).
    corrections = os.path.join(d, "datasets", "bench", "corrections")
    os.makedirs(corrections, exist_ok=True)
    for wav, text in wavs:
        with open(os.path.join(corrections, sha256(wav) + ".txt"), "w") as f:
            f.write(text + "\n")
    run_until("correction applied", len(wavs))
    write_config(0.0001)
    run_until("model swapped", 1)
    lines = open(log_path).read().splitlines()
    first = lambda what: next(stamp(l) for l in lines if what in l)
    runs = os.path.join(d, "datasets", "bench", "runs")
    run_dir = next(os.path.join(runs, r) for r in os.listdir(runs) if not r.endswith(".partial"))
    run = json.load(open(os.path.join(run_dir, "run.json")))
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp()
    trainer_start, trainer_end = first("training run started"), first("training run ended")
    scored, swapped = first("run evaluated on its held-out pieces"), first("model swapped")
    rates = [m["samples_per_second"] for m in run["metrics"] if "samples_per_second" in m]
    return {
        "run_dir": run_dir,
        "log": log_path,
        "gpu": run.get("gpu"),
        "device": next((m.get("device") for m in run["metrics"] if m.get("event") == "model"), None),
        "memory_limit": next((m.get("bytes") for m in run["metrics"]
                              if m.get("event") == "gpu_memory_limit"), None),
        "unloaded": "model unloaded for an exclusive training run" in "\n".join(lines),
        "reloaded": "model loaded again after the exclusive run" in "\n".join(lines),
        "mode": label,
        "segments": run.get("manifest_segments"),
        "steps": len(rates),
        "samples_per_second": sum(rates) / max(len(rates), 1),
        "to_serving": swapped - started,
        "export_and_prepare": trainer_start - started,
        "trainer": trainer_end - trainer_start,
        "convert_and_score": scored - trainer_end,
        "promote_and_swap": swapped - scored,
        "wer": (run["eval"].get("baseline", {}).get("wer"), run["eval"].get("candidate", {}).get("wer")),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("daemon")
    p.add_argument("python")
    p.add_argument("model")
    p.add_argument("--files", type=int, default=12)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--gpu-policy", default="exclusive", choices=["exclusive", "shared"])
    p.add_argument("--modes", default="full,lora", help="full, lora or both")
    p.add_argument("--json", help="also write every mode's figures (and where its run is) here")
    p.add_argument("--keep", action="store_true", help="keep the work folder (its path is printed)")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="bench-training-", dir=os.environ.get("BENCH_DIR"))
    try:
        speech = os.path.join(work, "speech")
        os.makedirs(speech)
        texts = [SENTENCES[i % len(SENTENCES)] + f" Number {i}." for i in range(args.files)]
        wavs = [(speak(speech, f"s{i:02}", t), t) for i, t in enumerate(texts)]
        total = sum(seconds(w) for w, _ in wavs)
        print(f"{args.files} files, {total:.1f} s of speech; {args.steps} steps of batch {args.batch}")
        extra = {"full": [], "lora": ["--lora-rank", "8", "--lora-targets",
                                      "q_proj,k_proj,v_proj,out_proj"]}
        results = [one_mode(args, work, m, extra[m], wavs) for m in args.modes.split(",")]
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        print("| mode | samples/s | threshold → serving | export+prepare | trainer | convert+score | promote+swap | WER serving → candidate |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in results:
            print(f"| {r['mode']} | {r['samples_per_second']:.2f} | {r['to_serving']:.1f} s | "
                  f"{r['export_and_prepare']:.1f} s | {r['trainer']:.1f} s | {r['convert_and_score']:.1f} s | "
                  f"{r['promote_and_swap']:.1f} s | {fmt(r['wer'][0])} → {fmt(r['wer'][1])} |")
        if len(results) == 2:
            full, lora = results
            print(f"ratios LoRA / full: samples/s {lora['samples_per_second'] / full['samples_per_second']:.2f}, "
                  f"threshold → serving {lora['to_serving'] / full['to_serving']:.2f}")
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
