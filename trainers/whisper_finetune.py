#!/usr/bin/env python3
"""Fine-tune Whisper on a hotfolderd dataset manifest (JAX/Flax + Hugging Face transformers).

hotfolderd starts this with HOTFOLDERD_MANIFEST (a frozen JSONL manifest: audio_filepath,
duration, text, ...) and HOTFOLDERD_OUTPUT_DIR (where checkpoints go) in its environment.
Every line printed to stdout is one JSON object: a metrics record. Notes and warnings go to
stderr.

    # a real model (downloaded by transformers from the Hugging Face hub, on the GPU box):
    python3 trainers/whisper_finetune.py --model openai/whisper-small.en --max-steps 2000
    # LoRA on the attention projections instead of all weights:
    python3 trainers/whisper_finetune.py --model openai/whisper-small.en --lora-rank 8
    # what the test suite runs on CPU: a tiny model built from a config, no downloads
    python3 trainers/whisper_finetune.py --tiny --tokenizer var/models/tokenizer-tiny.en.json \\
        --max-steps 3 --batch-size 2

Install: python3 -m venv var/trainer-venv && var/trainer-venv/bin/pip install -r
trainers/requirements.txt (CPU); on a CUDA box install jax[cuda12] of the same version.
"""

import argparse
import json
import math
import os
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
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="Flax Whisper to start from (hub id or local folder)")
    src.add_argument("--tiny", action="store_true", help="a tiny random Whisper built from a config")
    p.add_argument("--tokenizer", help="tokenizer.json (required with --tiny)")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--lora-rank", type=int, default=0, help="0: train all weights")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if not a.manifest or not a.output_dir:
        p.error("--manifest and --output-dir (or HOTFOLDERD_MANIFEST and HOTFOLDERD_OUTPUT_DIR) are required")
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


def main():
    args = parse_args()
    import jax
    import jax.numpy as jnp
    import optax
    from flax import traverse_util
    from transformers import (
        FlaxWhisperForConditionalGeneration,
        WhisperConfig,
        WhisperFeatureExtractor,
    )

    lines, bad = read_manifest(args.manifest)
    for n, why in bad:
        note(f"{args.manifest}:{n}: skipped: {why}")
    emit(event="manifest", segments=len(lines), bad_lines=len(bad),
         hours=sum(float(l["duration"]) for l in lines) / 3600)
    if not lines:
        note("no usable segments in the manifest")
        return 2

    if args.tiny:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(args.tokenizer)
        tok.no_padding()
        sot, eot = tok.token_to_id("<|startoftranscript|>"), tok.token_to_id("<|endoftext|>")
        config = WhisperConfig(
            vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
            decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=448,
            decoder_start_token_id=sot, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        )
        model = FlaxWhisperForConditionalGeneration(config, seed=args.seed, dtype=jnp.float32)

        def encode(text):
            # The tokenizer adds <|startoftranscript|><|notimestamps|> … <|endoftext|>.
            return tok.encode(" " + text.strip()).ids
    else:
        from transformers import WhisperTokenizer

        model = FlaxWhisperForConditionalGeneration.from_pretrained(args.model)
        hf_tok = WhisperTokenizer.from_pretrained(args.model)
        config = model.config
        eot = config.eos_token_id

        def encode(text):
            return hf_tok(" " + text.strip()).input_ids

    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    max_len = config.max_target_positions

    def batch_of(items):
        audio = [read_wav(l["audio_filepath"], l.get("offset"), l.get("duration") if l.get("offset") else None)
                 for l in items]
        mel = features(audio, sampling_rate=16000, return_tensors="np").input_features
        ids = [encode(l["text"])[:max_len + 1] for l in items]
        width = max(len(i) for i in ids) - 1
        dec = np.full((len(ids), width), eot, dtype=np.int32)
        labels = np.full((len(ids), width), -100, dtype=np.int32)
        for r, i in enumerate(ids):
            dec[r, : len(i) - 1] = i[:-1]
            labels[r, : len(i) - 1] = i[1:]
        return jnp.asarray(mel), jnp.asarray(dec), jnp.asarray(labels)

    params = model.params
    lora = args.lora_rank > 0
    if lora:
        flat = traverse_util.flatten_dict(params)
        key = jax.random.PRNGKey(args.seed)
        adapters = {}
        for path, w in flat.items():
            if path[-1] == "kernel" and path[-2] in ("q_proj", "v_proj"):
                key, sub = jax.random.split(key)
                adapters["/".join(path)] = {
                    "a": jax.random.normal(sub, (w.shape[0], args.lora_rank)) * 0.01,
                    "b": jnp.zeros((args.lora_rank, w.shape[1])),
                }
        scale = args.lora_alpha / args.lora_rank
        trainable = adapters

        def full_params(t):
            merged = dict(flat)
            for name, ab in t.items():
                path = tuple(name.split("/"))
                merged[path] = flat[path] + scale * ab["a"] @ ab["b"]
            return traverse_util.unflatten_dict(merged)
    else:
        trainable = params

        def full_params(t):
            return t

    schedule = optax.linear_schedule(0.0, args.learning_rate, max(1, args.warmup_steps))
    opt = optax.adamw(schedule, weight_decay=0.0 if lora else 0.01)
    opt_state = opt.init(trainable)

    def loss_fn(t, mel, dec, labels, rng):
        logits = model(mel, decoder_input_ids=dec, params=full_params(t), dropout_rng=rng, train=True).logits
        mask = labels >= 0
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(mask, labels, 0))
        return jnp.sum(ce * mask) / jnp.maximum(1, jnp.sum(mask))

    @jax.jit
    def step(t, opt_state, mel, dec, labels, rng):
        loss, grads = jax.value_and_grad(loss_fn)(t, mel, dec, labels, rng)
        updates, opt_state = opt.update(grads, opt_state, t)
        return optax.apply_updates(t, updates), opt_state, loss

    def save(name):
        out = os.path.join(args.output_dir, name)
        model.save_pretrained(out, params=full_params(trainable))
        if lora:
            from flax.serialization import to_bytes

            with open(os.path.join(out, "lora_adapters.msgpack"), "wb") as f:
                f.write(to_bytes(trainable))
        emit(event="checkpoint", step=n, path=os.path.relpath(out, args.output_dir))

    rng = jax.random.PRNGKey(args.seed)
    order = np.random.default_rng(args.seed)
    started = time.time()
    n, loss = 0, float("nan")
    while n < args.max_steps:
        picks = order.choice(len(lines), size=min(args.batch_size, len(lines)), replace=False)
        mel, dec, labels = batch_of([lines[i] for i in picks])
        rng, sub = jax.random.split(rng)
        trainable, opt_state, loss_v = step(trainable, opt_state, mel, dec, labels, sub)
        n += 1
        loss = float(loss_v)
        emit(step=n, loss=loss, learning_rate=float(schedule(n)), seconds=round(time.time() - started, 3))
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
