"""The Python bench: sections against what Python has, in the same run.

    python crates/sections-py/bench.py [--quick] [--runs N] [--json FILE]

- Round trip of an 8-byte message between two Python processes: a
  sections channel (one each way) against multiprocessing.Pipe and
  multiprocessing.Queue.
- Handing a 64 MiB NumPy array to another process, timed from "the array
  is ready in the sender" to "the receiver holds a NumPy array of it":
  sections (produced in place in a loan, sent, received in place) against
  multiprocessing.shared_memory (one copy into a shared block, a note
  through a Pipe, an array over the block) and pickling through a Queue.
  The time the sender takes to fill the array is reported separately.

Each case runs in fresh processes per run; the table shows the median,
min and max over the runs of each run's median; the claims are ratios of
those medians, as in `sect bench`.
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from multiprocessing import shared_memory

import numpy as np

import sections

ARRAY = 64 << 20
NOW = time.perf_counter_ns  # CLOCK_MONOTONIC: one clock for all processes

CLAIMS = [
    # name, case over case, goal, what it says
    ("py_channel_rtt_vs_pipe", "pipe 8 B", "sections channel 8 B", 10.0,
     "an 8-byte round trip between two Python processes through multiprocessing.Pipe "
     "takes this many times as long as through a sections channel"),
    ("py_array_handoff_vs_queue", "Queue (pickle)", "sections loan", 50.0,
     "handing a 64 MiB NumPy array to another process through a multiprocessing.Queue "
     "takes this many times as long as through a sections loan"),
]


# --- round trips -----------------------------------------------------------

def sections_echo(ns, n):
    rx = sections.Channel.open_receiver("ping", namespace=ns)
    tx = sections.Channel.open_sender("pong", namespace=ns)
    for _ in range(n):
        tx.send(rx.recv_bytes())


def rtt_sections(n):
    ns = tempfile.mkdtemp(prefix="sections-bench-")
    ping = sections.Channel.create("ping", 4096, namespace=ns)
    pong = sections.Channel.create("pong", 4096, namespace=ns)
    tx = sections.Channel.open_sender("ping", namespace=ns)
    rx = sections.Channel.open_receiver("pong", namespace=ns)
    peer = mp.get_context("fork").Process(target=sections_echo, args=(ns, n))
    peer.start()
    times = []
    payload = b"8 bytes!"
    for _ in range(n):
        t0 = NOW()
        tx.send(payload)
        rx.recv_bytes()
        times.append(NOW() - t0)
    peer.join()
    del tx, rx
    ping.close(), pong.close()
    shutil.rmtree(ns, ignore_errors=True)
    return statistics.median(times[n // 10:])


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def rtt_pipe(n):
    a, b = mp.Pipe()
    peer = mp.get_context("fork").Process(target=pipe_echo, args=(b, n))
    peer.start()
    times = []
    for _ in range(n):
        t0 = NOW()
        a.send_bytes(b"8 bytes!")
        a.recv_bytes()
        times.append(NOW() - t0)
    peer.join()
    return statistics.median(times[n // 10:])


def queue_echo(q_in, q_out, n):
    for _ in range(n):
        q_out.put(q_in.get())


def rtt_queue(n):
    ctx = mp.get_context("fork")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    peer = ctx.Process(target=queue_echo, args=(q_in, q_out, n))
    peer.start()
    times = []
    for _ in range(n):
        t0 = NOW()
        q_in.put(b"8 bytes!")
        q_out.get()
        times.append(NOW() - t0)
    peer.join()
    return statistics.median(times[n // 10:])


# --- array hand-off ----------------------------------------------------------

def check(a, i):
    assert a.nbytes == ARRAY and a[0] == i % 251 and a[-1] == i % 251, "wrong array"


def sections_receiver(ns, n, acks):
    rx = sections.Channel.open_receiver("arrays", namespace=ns)
    for i in range(n):
        msg = rx.recv()
        a = np.frombuffer(msg, dtype=np.uint8)
        held = NOW()
        check(a, i)
        del a
        msg.release()
        acks.send(held)


def handoff_sections(n):
    ns = tempfile.mkdtemp(prefix="sections-bench-")
    ch = sections.Channel.create("arrays", ARRAY + 4096, namespace=ns)
    tx = sections.Channel.open_sender("arrays", namespace=ns)
    acks, theirs = mp.Pipe()
    peer = mp.get_context("fork").Process(target=sections_receiver, args=(ns, n, theirs))
    peer.start()
    times, fills = [], []
    for i in range(n):
        loan = tx.loan(ARRAY)
        a = np.frombuffer(loan, dtype=np.uint8)
        f0 = NOW()
        a.fill(i % 251)  # produced in place
        ready = NOW()
        fills.append(ready - f0)
        del a
        loan.send()
        times.append(acks.recv() - ready)
    peer.join()
    del tx
    ch.close()
    shutil.rmtree(ns, ignore_errors=True)
    return statistics.median(times), statistics.median(fills)


def shm_receiver(name, n, conn):
    shm = shared_memory.SharedMemory(name=name)
    for i in range(n):
        conn.recv()
        a = np.ndarray((ARRAY,), dtype=np.uint8, buffer=shm.buf)
        held = NOW()
        check(a, i)
        del a
        conn.send(held)
    shm.close()


def handoff_shm(n):
    shm = shared_memory.SharedMemory(create=True, size=ARRAY)
    ours, theirs = mp.Pipe()
    peer = mp.get_context("fork").Process(target=shm_receiver, args=(shm.name, n, theirs))
    peer.start()
    block = np.ndarray((ARRAY,), dtype=np.uint8, buffer=shm.buf)
    src = np.empty(ARRAY, dtype=np.uint8)
    times = []
    for i in range(n):
        src.fill(i % 251)
        ready = NOW()
        block[:] = src  # the copy into shared memory
        ours.send(i)
        times.append(ours.recv() - ready)
    peer.join()
    del block
    shm.close()
    shm.unlink()
    return statistics.median(times)


def queue_receiver(q, n, conn):
    for i in range(n):
        a = q.get()
        held = NOW()
        check(a, i)
        conn.send(held)


def handoff_queue(n):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ours, theirs = mp.Pipe()
    peer = ctx.Process(target=queue_receiver, args=(q, n, theirs))
    peer.start()
    src = np.empty(ARRAY, dtype=np.uint8)
    times = []
    for i in range(n):
        src.fill(i % 251)
        ready = NOW()
        q.put(src)
        times.append(ours.recv() - ready)
    peer.join()
    return statistics.median(times)


# --- the run -----------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer operations, 3 runs")
    p.add_argument("--runs", type=int, help="runs per case (default 5, 3 with --quick)")
    p.add_argument("--json", help="also write the results as JSON to FILE")
    args = p.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    if runs < 1:
        p.error("--runs must be 1 or more")
    trips = 2_000 if args.quick else 20_000
    arrays = 5 if args.quick else 20

    cases = {
        "sections channel 8 B": ("rtt", lambda: rtt_sections(trips)),
        "pipe 8 B": ("rtt", lambda: rtt_pipe(trips)),
        "Queue 8 B": ("rtt", lambda: rtt_queue(trips)),
        "sections loan": ("handoff", lambda: handoff_sections(arrays)),
        "shared_memory + copy": ("handoff", lambda: handoff_shm(arrays)),
        "Queue (pickle)": ("handoff", lambda: handoff_queue(arrays)),
    }
    results, fills = {}, []
    for name, (group, run) in cases.items():
        values = []
        for _ in range(runs):
            got = run()
            if isinstance(got, tuple):
                got, fill = got
                fills.append(fill)
            values.append(got)
        results[name] = {"group": group, "runs": values, "median": statistics.median(values),
                         "min": min(values), "max": max(values), "unit": "ns"}

    print(f"sections Python bench: Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.machine()} ({os.cpu_count()} cores), {platform.system()} {platform.release()}, "
          f"{runs} runs per case")
    titles = {"rtt": "round trip of an 8-byte message between two Python processes",
              "handoff": "a 64 MiB NumPy array handed to another process (ready in the sender "
                         "-> an array in the receiver)"}
    for group in ("rtt", "handoff"):
        print(f"\npython / {titles[group]}")
        print(f"{'CASE':24} {'MEDIAN':>14} {'MIN':>14} {'MAX':>14} UNIT")
        for name, r in results.items():
            if r["group"] == group:
                print(f"{name:24} {r['median']:14.0f} {r['min']:14.0f} {r['max']:14.0f} ns")
    print(f"\nnote: filling the 64 MiB array in place in the loan took {statistics.median(fills) / 1e6:.1f} ms "
          "(median; not part of the hand-off)")
    claims = []
    print("\nclaims (ratios of medians measured in this run):")
    for name, slow, fast, goal, what in CLAIMS:
        ratio = results[slow]["median"] / results[fast]["median"]
        holds = ratio >= goal
        claims.append({"name": name, "ratio": ratio, "goal": goal, "holds": holds, "what": what})
        print(f"  {'HOLDS' if holds else 'MISSES':7} {name:28} {ratio:10.2f}  goal >= {goal:.2f}  {what}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": platform.python_version(), "numpy": np.__version__, "runs": runs,
                       "cases": results, "fill_ns": statistics.median(fills), "claims": claims}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
