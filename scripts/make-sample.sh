#!/usr/bin/env bash
# Makes the bundled sample (spoken English, 16 kHz wav) with espeak-ng: var/samples/sample.wav
set -euo pipefail
cd "$(dirname "$0")/.."
out=var/samples/sample.wav
[ -s "$out" ] && exit 0
mkdir -p var/samples
espeak-ng -v en-us -s 150 -w var/samples/.sample-raw.wav \
  "Welcome to hot folder D. Drop an audio file into the inbox, and a transcript appears in the output folder."
ffmpeg -loglevel error -y -i var/samples/.sample-raw.wav -ar 16000 -ac 1 "$out"
rm -f var/samples/.sample-raw.wav
