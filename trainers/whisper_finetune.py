#!/usr/bin/env python3
"""Fine-tune Whisper on a hotfolderd dataset manifest (PyTorch + transformers 5 + PEFT).

hotfolderd starts this with HOTFOLDERD_MANIFEST (a frozen JSONL manifest: audio_filepath,
duration, text, ...) and HOTFOLDERD_OUTPUT_DIR (where the trained model goes) in its
environment. Every line printed to stdout is one JSON object: a metrics record. Notes and
warnings go to stderr. The result, output/final, is a Hugging Face folder (full fine-tune) or
a PEFT adapter folder (LoRA); `hotfolderd model import-hf` turns either into a ggml model.

    # start from the model the daemon serves, exported first:
    hotfolderd model export-hf var/models/ggml-tiny.en.bin --out var/hf/tiny.en
    python3 trainers/whisper_finetune.py --model var/hf/tiny.en --max-steps 2000
    # LoRA on chosen projections instead of all weights:
    python3 trainers/whisper_finetune.py --model var/hf/tiny.en --lora-rank 8 \\
        --lora-targets q_proj,k_proj,v_proj,out_proj
    # a tiny random Whisper built from a config (a smoke test, no weights needed):
    python3 trainers/whisper_finetune.py --tiny --tokenizer var/models/tokenizer-tiny.en.json

--model defaults to HOTFOLDERD_BASE_MODEL. On a CUDA box it trains in bf16 (fp16 where bf16
is missing) with gradient checkpointing; on CPU in f32.
Install: scripts/trainer-venv.sh (trainers/requirements.txt, pinned).
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
import wave

import numpy as np

# Metrics go to stdout, one JSON object per line; anything else a library prints must not.
_metrics_out = sys.stdout
sys.stdout = sys.stderr


def emit(**record):
    _metrics_out.write(json.dumps(record) + "\n")
    _metrics_out.flush()


def note(message):
    print(message, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", default=os.environ.get("HOTFOLDERD_MANIFEST"))
    p.add_argument("--output-dir", default=os.environ.get("HOTFOLDERD_OUTPUT_DIR"))
    p.add_argument("--model", default=os.environ.get("HOTFOLDERD_BASE_MODEL"),
                   help="Hugging Face Whisper folder to start from (hotfolderd model export-hf)")
    p.add_argument("--tiny", action="store_true", help="a tiny random Whisper built from a config")
    p.add_argument("--tokenizer", help="tokenizer.json (with --tiny; else the model's own)")
    p.add_argument("--language", default="en", help="for lines without one (multilingual models)")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--lora-rank", type=int, default=0, help="0: train all weights")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-targets", default="q_proj,v_proj",
                   help="comma-separated module names LoRA adapts")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--gradient-checkpointing", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if not a.manifest or not a.output_dir:
        p.error("--manifest and --output-dir (or HOTFOLDERD_MANIFEST and HOTFOLDERD_OUTPUT_DIR) are required")
    if not a.tiny and not a.model:
        p.error("no model to start from: pass --model DIR (a folder from `hotfolderd model export-hf`), "
                "or set HOTFOLDERD_BASE_MODEL, or --tiny for a random smoke-test model")
    if a.tiny and not a.tokenizer:
        p.error("--tiny needs --tokenizer")
    return a


def read_manifest(path):
    """Usable lines, and (line number, reason) for every line that is not."""
    good, bad = [], []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                line = json.loads(text)
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                for key in ("audio_filepath", "duration", "text"):
                    if key not in line:
                        raise ValueError(f"no {key!r}")
                good.append(line)
            except ValueError as e:
                bad.append((n, str(e)))
    return good, bad


def read_wav(path, offset=None, duration=None):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        if offset:
            w.setpos(int(offset * 16000))
        frames = w.getnframes() if duration is None else int(duration * 16000)
        pcm = np.frombuffer(w.readframes(frames), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def buckets(lines, batch_size, rng):
    """Batches of neighbouring durations (so label widths stay close), in a shuffled order."""
    order = sorted(range(len(lines)), key=lambda i: float(lines[i]["duration"]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def main():
    args = parse_args()
    import torch
    from tokenizers import Tokenizer
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(args.seed)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    amp = None
    if cuda:
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # Sharing the GPU with transcription (gpu_policy = "shared"): the daemon says how much
        # this run may take, and PyTorch's allocator is held to it.
        limit = int(os.environ.get("HOTFOLDERD_GPU_MEMORY_LIMIT", "0") or 0)
        if limit > 0:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), 0)
            emit(event="gpu_memory_limit", bytes=limit, fraction=round(min(1.0, limit / total), 4))

    lines, bad = read_manifest(args.manifest)
    for n, why in bad:
        note(f"{args.manifest}:{n}: skipped: {why}")
    emit(event="manifest", segments=len(lines), bad_lines=len(bad),
         hours=sum(float(l["duration"]) for l in lines) / 3600)
    if not lines:
        note("no usable segments in the manifest")
        return 2

    if args.tiny:
        tok = Tokenizer.from_file(args.tokenizer)
        eot = tok.token_to_id("<|endoftext|>")
        config = WhisperConfig(
            vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
            decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=448,
            decoder_start_token_id=tok.token_to_id("<|startoftranscript|>"),
            pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        )
        model = WhisperForConditionalGeneration(config)
        source = None
    else:
        source = os.path.abspath(args.model)
        model = WhisperForConditionalGeneration.from_pretrained(source)
        tok = Tokenizer.from_file(args.tokenizer or os.path.join(source, "tokenizer.json"))
        config = model.config
    tok.no_padding()
    eot = tok.token_to_id("<|endoftext|>")
    multilingual = config.vocab_size >= 51865

    def special(text):
        i = tok.token_to_id(text)
        if i is None:
            raise SystemExit(f"the tokenizer has no {text} token")
        return i

    # The prompt whisper.cpp decodes with, so training and serving see the same context.
    def prefix(line):
        ids = [special("<|startoftranscript|>")]
        if multilingual:
            ids += [special(f"<|{line.get('language') or args.language}|>"), special("<|transcribe|>")]
        return ids + [special("<|notimestamps|>")]

    def encode(line):
        return prefix(line) + tok.encode(" " + line["text"].strip(), add_special_tokens=False).ids + [eot]

    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    max_len = config.max_target_positions

    def batch_of(items):
        audio = [read_wav(l["audio_filepath"], l.get("offset"), l.get("duration") if l.get("offset") else None)
                 for l in items]
        mel = features(audio, sampling_rate=16000, return_tensors="pt").input_features
        ids = [encode(l)[:max_len + 1] for l in items]
        # Widths rounded up to a multiple of 8: fewer distinct shapes for the kernels.
        width = -(-(max(len(i) for i in ids) - 1) // 8) * 8
        dec = torch.full((len(ids), width), eot, dtype=torch.long)
        labels = torch.full((len(ids), width), -100, dtype=torch.long)
        for r, i in enumerate(ids):
            dec[r, : len(i) - 1] = torch.tensor(i[:-1])
            labels[r, : len(i) - 1] = torch.tensor(i[1:])
        return mel.to(device), dec.to(device), labels.to(device)

    lora = args.lora_rank > 0
    if lora:
        from peft import LoraConfig, get_peft_model

        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        model = get_peft_model(model, LoraConfig(
            r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
            target_modules=targets, bias="none"))
    checkpointing = args.gradient_checkpointing == "on" or (args.gradient_checkpointing == "auto" and cuda)
    if checkpointing:
        model.gradient_checkpointing_enable()
        if lora:
            model.enable_input_require_grads()
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    emit(event="model", parameters=sum(p.numel() for p in model.parameters()),
         trainable=sum(p.numel() for p in trainable), device=str(device),
         dtype=str(amp or torch.float32).replace("torch.", ""), lora_rank=args.lora_rank,
         gradient_checkpointing=checkpointing)
    opt = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0 if lora else 0.01)
    warmup = max(1, args.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    def save(name):
        out = os.path.join(args.output_dir, name)
        model.save_pretrained(out)
        if args.tiny:
            shutil.copy(args.tokenizer, os.path.join(out, "tokenizer.json"))
        else:
            # What import-hf and transformers' processors need beside the weights.
            for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                      "preprocessor_config.json", "generation_config.json"):
                if os.path.isfile(os.path.join(source, f)) and not os.path.exists(os.path.join(out, f)):
                    shutil.copy(os.path.join(source, f), os.path.join(out, f))
        emit(event="checkpoint", step=n, path=os.path.relpath(out, args.output_dir))

    rng = np.random.default_rng(args.seed)
    started = time.time()
    n, loss = 0, float("nan")
    pending = []
    while n < args.max_steps:
        if not pending:
            pending = buckets(lines, args.batch_size, rng)
        picks = pending.pop()
        t0 = time.time()
        mel, dec, labels = batch_of([lines[i] for i in picks])
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = model(input_features=mel, decoder_input_ids=dec, labels=labels)
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(out.loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            out.loss.backward()
            opt.step()
        lr = sched.get_last_lr()[0]
        sched.step()
        n += 1
        loss = float(out.loss.detach())
        emit(step=n, loss=loss, learning_rate=lr, samples_per_second=round(len(picks) / (time.time() - t0), 3),
             seconds=round(time.time() - started, 3))
        if not math.isfinite(loss):
            note(f"loss is {loss} at step {n}; stopping")
            return 1
        if args.save_every and n % args.save_every == 0:
            save(f"checkpoint-{n}")
    save("final")
    emit(event="done", steps=n, final_loss=loss, lora_rank=args.lora_rank,
         seconds=round(time.time() - started, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
