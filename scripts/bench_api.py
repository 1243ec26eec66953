"""The HTTP API benchmark (scripts/bench-api.sh runs it): one daemon with a watched folder
and the API; short clips, each different (so no clip is a twin of another), go in by a
file drop and by POST /v1/audio/transcriptions, one at a time; then requests per second
with four clients, for clips already transcribed (the API and journal alone: their outputs
are reused) and for new ones (transcription-bound)."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

clips, binary, models = int(sys.argv[1]), sys.argv[2], sys.argv[3]
work = os.environ["BENCH_DIR"]
STABLE_FOR = 0.5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speak(name, text):
    path = os.path.join(work, name + ".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", path, text], check=True)
    return path


def post(port, path, fields=()):
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", "file=@" + path]
    for f in fields:
        args += ["-F", f]
    args.append(f"http://127.0.0.1:{port}/v1/audio/transcriptions")
    code = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if code != "200":
        raise SystemExit(f"{path}: HTTP {code}")


port = free_port()
inbox, out = os.path.join(work, "inbox"), os.path.join(work, "out")
os.makedirs(inbox)
config = os.path.join(work, "hotfolderd.toml")
with open(config, "w") as f:
    f.write(
        f'[journal]\npath = "{work}/state/journal.sqlite"\n'
        f'[asr]\nmodel = "{models}/ggml-tiny.en.bin"\nthreads = 2\n'
        f'[[watch]]\npath = "{inbox}"\noutput = "{out}"\nstable_for = "{int(STABLE_FOR * 1000)}ms"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\napi = true\nmax_concurrent_uploads = 8\n'
    )
log = open(os.path.join(work, "daemon.log"), "w")
daemon = subprocess.Popen([binary, "run", "--config", config], stdout=log, stderr=log)
try:
    deadline = time.time() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    said = lambda i: f"Clip {i} says {words[i % 8]} and {words[(i * 3) % 8]} to the daemon."
    dropped = [speak(f"drop{i}", said(i)) for i in range(clips)]
    posted = [speak(f"post{i}", said(i + clips)) for i in range(clips)]
    fresh = [speak(f"fresh{i}", said(i + 2 * clips)) for i in range(2 * clips)]
    post(port, speak("warm", "Warming up the model."))

    drop_s = []
    for path in dropped:
        name = os.path.basename(path)
        started = time.perf_counter()
        subprocess.run(["cp", path, os.path.join(inbox, name)], check=True)
        target = os.path.join(out, name[:-4] + ".json")
        while not os.path.exists(target):
            time.sleep(0.005)
        drop_s.append(time.perf_counter() - started)
    api_s = []
    for path in posted:
        started = time.perf_counter()
        post(port, path)
        api_s.append(time.perf_counter() - started)
    drop, api = statistics.median(drop_s), statistics.median(api_s)
    print(f"short clips ({clips} each way, one at a time):")
    print(f"  file drop → transcript: median {drop:.3f} s (stable_for = {STABLE_FOR} s of it)")
    print(f"  POST → transcript:      median {api:.3f} s")
    print(f"  API / drop: {api / drop:.2f}×; API minus (drop less stable_for): {api - (drop - STABLE_FOR):+.3f} s")

    def rate(paths, clients):
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda p: post(port, p), paths))
        return len(paths) / (time.perf_counter() - started)

    again = [posted[i % clips] for i in range(10 * clips)]
    print("requests per second, four clients:")
    print(f"  already transcribed (outputs reused): {rate(again, 4):.1f} req/s")
    print(f"  new clips (transcribed):               {rate(fresh, 4):.2f} req/s")
finally:
    daemon.terminate()
    daemon.wait(timeout=60)
