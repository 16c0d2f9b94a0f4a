"""Channels between Python processes and with Rust (`sect send/recv`):
every message, in order, zero-copy in place, loans, bad input, Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sections

SENDER = """
import sys, sections
tx = sections.Channel.open_sender(sys.argv[1], namespace=sys.argv[2])
n = int(sys.argv[3])
for i in range(n):
    body = i.to_bytes(8, "little") * (1 + i % 7)
    if i % 3 == 0:
        with tx.loan(len(body)) as buf:
            buf[:] = body
    else:
        tx.send(body)
print("sent", flush=True)
"""


def test_100000_messages_between_processes_in_order(ns, py):
    n = 100_000
    with sections.Channel.create("stream", 1 << 16, namespace=ns):
        rx = sections.Channel.open_receiver("stream", namespace=ns)
        child = py.spawn(SENDER, "stream", ns, n)
        got = 0
        for i, msg in enumerate(rx):
            expect = i.to_bytes(8, "little") * (1 + i % 7)
            if i % 2:
                assert bytes(msg) == expect
            else:
                a = np.frombuffer(msg, dtype=np.uint64)
                assert (a == i).all() and len(a) == 1 + i % 7
                del a
            got += 1
        assert got == n, "every message, then the end of the iteration"
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == "sent"


def test_a_message_is_read_in_place(ns):
    ch = sections.Channel.anonymous(1 << 16)
    tx, rx = ch.sender(), ch.receiver()
    tx.send(np.arange(1000, dtype=np.float64))
    with rx.recv() as msg:
        a = np.frombuffer(msg, dtype=np.float64)
        assert a.ctypes.data == msg.address, "the array is the ring's bytes"
        assert not a.flags.writeable
        assert a.sum() == sum(range(1000))
        del a
    with pytest.raises(ValueError):
        msg.tobytes()


def test_a_buffer_outliving_its_message_keeps_it_and_blocks_the_next(ns):
    ch = sections.Channel.anonymous(4096)
    tx, rx = ch.sender(), ch.receiver()
    tx.send(b"first")
    tx.send(b"second")
    msg = rx.recv()
    view = memoryview(msg)
    with pytest.raises(BufferError):
        msg.release()
    with pytest.raises(BufferError):
        rx.recv()
    with pytest.raises(BufferError):
        rx.close()
    assert bytes(view) == b"first", "still mapped and unchanged"
    view.release()
    assert rx.recv_bytes() == b"second"
    with pytest.raises(BufferError):
        memoryview(msg)  # released by the recv above


def test_loans_send_on_exit_cancel_on_exception_and_refuse_live_buffers():
    ch = sections.Channel.anonymous(4096)
    tx, rx = ch.sender(), ch.receiver()
    with pytest.raises(KeyError):
        with tx.loan(4) as buf:
            buf[:] = b"lost"
            raise KeyError
    with tx.loan(4) as buf:
        assert not buf.readonly and len(buf) == 4
        buf[:] = b"kept"
    loan = tx.loan(3)
    arr = np.frombuffer(loan, dtype=np.uint8)
    arr[:] = [1, 2, 3]
    with pytest.raises(RuntimeError):
        tx.send(b"x")  # the loan is pending
    with pytest.raises(BufferError):
        loan.send()
    del arr
    loan.send()
    with pytest.raises(ValueError):
        loan.cancel()
    # A loan dropped unsent is cancelled.
    dropped = tx.loan(5)
    memoryview(dropped)[:] = b"never"
    del dropped
    tx.close()
    assert [bytes(m) for m in rx] == [b"kept", b"\x01\x02\x03"]


def test_bad_input_to_channels():
    ch = sections.Channel.anonymous(4096)
    tx, rx = ch.sender(), ch.receiver()
    with pytest.raises(TypeError):
        tx.send(12)
    with pytest.raises(TypeError):
        tx.send("text is not bytes")
    with pytest.raises(sections.InvalidSizeError):
        tx.send(b"x" * 8192)
    with pytest.raises(sections.InvalidSizeError):
        tx.loan(1 << 40)
    with pytest.raises(OverflowError):
        tx.loan(-1)
    with pytest.raises(ValueError):
        tx.send(np.arange(10)[::2])  # not contiguous
    with pytest.raises(ValueError):
        rx.recv(timeout=-1)
    with pytest.raises(ValueError):
        rx.recv(timeout=float("nan"))
    with pytest.raises(sections.TimeoutError) as e:
        rx.recv(timeout=0.01)
    assert isinstance(e.value, TimeoutError)
    with pytest.raises(sections.EmptyError):
        rx.try_recv()
    with pytest.raises(ValueError):
        sections.Channel.anonymous(4096, wait="sometimes")
    assert sections.Channel.anonymous(0).capacity == 64, "the smallest ring, as in Rust"
    with pytest.raises(OverflowError):
        sections.Channel.anonymous(1 << 40)
    with pytest.raises(sections.InvalidRangeError):
        sections.Channel.anonymous(4096, senders=0)
    with pytest.raises(sections.Error):
        sections.Channel.sender_from_token("fd:99999:rw:0")
    with pytest.raises(sections.Error):
        sections.Channel.sender_from_token("\x1b[2J garbage")
    with pytest.raises(sections.ExistsError):
        ch.receiver()  # one receiver at a time
    tx.send(np.float64(1.5))  # a 0-d buffer: no shape
    assert np.frombuffer(rx.recv_bytes()) == 1.5
    tx.send(b"")
    assert rx.recv_bytes() == b""
    tx.close()
    with pytest.raises(ValueError):
        tx.send(b"closed")
    with pytest.raises(sections.DisconnectedError) as e:
        rx.recv()
    assert isinstance(e.value, ConnectionError)


def test_sender_killed_while_receiver_waits_is_disconnected(ns, py):
    with sections.Channel.create("dies", 4096, namespace=ns):
        rx = sections.Channel.open_receiver("dies", namespace=ns)
        child = py.spawn(
            """
            import sys, time, sections
            tx = sections.Channel.open_sender(sys.argv[1], namespace=sys.argv[2])
            tx.send(b"before")
            print("ready", flush=True)
            time.sleep(600)
            """,
            "dies",
            ns,
        )
        py.wait_line(child, "ready")
        assert rx.recv_bytes(timeout=30) == b"before"
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(sections.DisconnectedError):
            rx.recv(timeout=30)


def test_anonymous_channel_handed_to_a_subprocess_and_a_fork(ns, py):
    import multiprocessing

    ch = sections.Channel.anonymous(1 << 16)
    rx = ch.receiver()
    with ch.share() as inherit:
        child = py.spawn(
            """
            import sys, sections
            tx = sections.Channel.sender_from_token(sys.argv[1])
            tx.send(b"from a subprocess")
            """,
            inherit.token,
            pass_fds=inherit.fds,
        )
    assert rx.recv_bytes(timeout=30) == b"from a subprocess"
    assert child.wait(timeout=30) == 0, child.stderr.read()

    def forked(token):
        sections.Channel.sender_from_token(token).send(b"from a fork")

    # A new channel: the first one is disconnected once its sender left.
    ch = sections.Channel.anonymous(1 << 16)
    rx = ch.receiver()
    ctx = multiprocessing.get_context("fork")
    with ch.share() as inherit:
        p = ctx.Process(target=forked, args=(inherit.token,))
        p.start()
    assert rx.recv_bytes(timeout=30) == b"from a fork"
    p.join(30)
    assert p.exitcode == 0


def test_ctrl_c_interrupts_a_blocking_recv(ns, py):
    with sections.Channel.create("quiet", 4096, namespace=ns):
        child = py.spawn(
            """
            import sys, time, sections
            tx = sections.Channel.open_sender(sys.argv[1], namespace=sys.argv[2])
            rx_ch = sections.Channel.create("back", 4096, namespace=sys.argv[2])
            rx = rx_ch.receiver()
            print("ready", flush=True)
            try:
                rx.recv()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            """,
            "quiet",
            ns,
        )
        py.wait_line(child, "ready")
        time.sleep(0.2)  # let it block in recv
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        assert out.strip() == "interrupted", err


def test_python_and_rust_share_a_channel_both_ways(ns, sect, py):
    # Rust sends, Python receives.
    with sections.Channel.create("r2p", 1 << 16, namespace=ns):
        rx = sections.Channel.open_receiver("r2p", namespace=ns)
        subprocess.run(
            [sect, "--namespace", ns, "send", "r2p", "one", "two", "esc\x1bape"],
            check=True,
            timeout=60,
        )
        assert [bytes(m) for m in rx] == [b"one", b"two", b"esc\x1bape"]
    # Python sends, Rust receives (numbers and a NumPy array).
    ch = sections.Channel.create("p2r", 1 << 16, namespace=ns)
    tx = sections.Channel.open_sender("p2r", namespace=ns)
    for i in range(100):
        tx.send(f"message {i}".encode())
    tx.send(np.array([1, 2], dtype=np.uint8))
    tx.close()
    out = subprocess.run(
        [sect, "--namespace", ns, "recv", "p2r"], check=True, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    assert out == [f"message {i}" for i in range(100)] + ["\\x01\\x02"]
    ch.close()


def test_python_and_rust_share_a_section(ns, sect):
    with sections.Section.create("shared", 4096, namespace=ns) as s, s.map() as v:
        memoryview(v)[:11] = b"from python"
        out = subprocess.run(
            [sect, "--namespace", ns, "cat", "shared", "--len", "11"],
            check=True, capture_output=True, timeout=60,
        ).stdout
        assert out == b"from python"
        subprocess.run(
            [sect, "--namespace", ns, "write", "shared", "--offset", "100"],
            input=b"from rust", check=True, timeout=60,
        )
        assert bytes(memoryview(v)[100:109]) == b"from rust"


def test_a_section_rust_creates_is_opened_by_python(ns, sect):
    holder = subprocess.Popen(
        [sect, "--namespace", ns, "create", "from-rust", "--size", "64K", "--hold"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert "holding" in holder.stdout.readline()
        subprocess.run(
            [sect, "--namespace", ns, "write", "from-rust", "--offset", "4096"],
            input=b"written by rust", check=True, timeout=60,
        )
        with sections.Section.open("from-rust", "read", namespace=ns) as s, s.map() as v:
            assert s.size == 64 << 10
            a = np.frombuffer(v, dtype=np.uint8)
            assert a[4096:4111].tobytes() == b"written by rust"
            del a
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=30)
    # The Rust holder is gone, and no Python handle is left: so is the name.
    with pytest.raises(sections.NotFoundError):
        sections.Section.open("from-rust", namespace=ns)


def test_a_loan_entered_and_never_exited_is_cancelled_when_collected():
    import gc

    ch = sections.Channel.anonymous(4096)
    tx, rx = ch.sender(), ch.receiver()
    buf = tx.loan(8).__enter__()
    buf[:] = b"unsent!!"
    del buf  # the memoryview and its loan form a cycle
    gc.collect()
    tx.send(b"next")  # the sender is free again
    tx.close()
    assert [bytes(m) for m in rx] == [b"next"], "the collected loan was cancelled"


def test_an_exception_in_a_loan_block_is_not_replaced_by_a_live_buffer():
    ch = sections.Channel.anonymous(4096)
    tx, rx = ch.sender(), ch.receiver()
    with pytest.raises(KeyError):
        with tx.loan(4) as buf:
            kept = np.frombuffer(buf, dtype=np.uint8)
            raise KeyError("the block's own error")
    assert kept.nbytes == 4  # still mapped: the loan is pending
    with pytest.raises(RuntimeError):
        tx.send(b"x")
    del kept, buf
    import gc

    gc.collect()
    tx.send(b"after")
    tx.close()
    assert [bytes(m) for m in rx] == [b"after"]
