"""Mutex (abandonment after kill -9), Event, Semaphore across processes."""

import os
import signal
import threading

import pytest

import sections


def test_abandoned_mutex_is_reported_to_the_next_holder(ns, py):
    m = sections.Mutex.create("robust", namespace=ns)
    child = py.spawn(
        """
        import sys, time, sections
        m = sections.Mutex.open("robust", namespace=sys.argv[1])
        m.acquire()
        print("holding", flush=True)
        time.sleep(600)
        """,
        ns,
    )
    py.wait_line(child, "holding")
    assert m.acquire(timeout=0.05) is False, "held by the child"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert m.acquire(timeout=30) is True
    assert m.abandoned is True
    m.release()
    with m:
        assert m.abandoned is False, "repaired: the next holder is told nothing"



def test_mutex_is_held_by_a_thread(ns):
    m = sections.Mutex.create("threads", namespace=ns)
    with pytest.raises(RuntimeError):
        m.release()
    m.acquire()
    with pytest.raises(RuntimeError):
        m.acquire()  # not recursive
    errors = []

    def other():
        try:
            m.release()
        except RuntimeError as e:
            errors.append(e)
        other_m = sections.Mutex.open("threads", namespace=ns)
        errors.append(other_m.acquire(timeout=0.05))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert isinstance(errors[0], RuntimeError) and errors[1] is False
    m.release()


def test_event_and_semaphore_between_processes(ns, py):
    ev = sections.Event.create("go", manual_reset=True, namespace=ns)
    sem = sections.Semaphore.create("slots", 0, 10, namespace=ns)
    child = py.spawn(
        """
        import sys, sections
        ev = sections.Event.open("go", namespace=sys.argv[1])
        sem = sections.Semaphore.open("slots", namespace=sys.argv[1])
        assert ev.wait(timeout=60)
        sem.release(3)
        """,
        ns,
    )
    assert ev.wait(timeout=0.01) is False
    ev.set()
    assert sem.acquire(timeout=60) and sem.acquire(timeout=60) and sem.acquire(timeout=60)
    assert sem.acquire(timeout=0.01) is False
    assert child.wait(timeout=60) == 0, child.stderr.read()
    with pytest.raises(sections.Error):
        sem.release(100)
    with pytest.raises(sections.NotFoundError):
        sections.Event.open("missing", namespace=ns)


def test_a_held_mutex_collected_on_another_thread_never_corrupts_memory(ns, py):
    # The holder's robust list runs through the mutex's page: unmapping it
    # while held made the next lock write into whatever was mapped there.
    child = py.spawn(
        """
        import sys, threading, sections
        ns = sys.argv[1]
        other = sections.Mutex.create("other", namespace=ns)
        held = [sections.Mutex.create("held", namespace=ns)]
        held[0].acquire()
        t = threading.Thread(target=held.clear)  # the last reference goes there
        t.start(); t.join()
        # A new mapping of the same size may take the freed address.
        s = sections.Section.create("after", 4096, namespace=ns)
        v = s.map(); m = memoryview(v); m[:] = b"\\xaa" * 4096
        other.acquire(); other.release()
        print("clean" if all(b == 0xaa for b in m) else "written", flush=True)
        """,
        ns,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "clean"


def test_mutex_acquire_from_a_second_object_on_the_same_thread_fails_cleanly(ns):
    a = sections.Mutex.create("twice", namespace=ns)
    b = sections.Mutex.open("twice", namespace=ns)
    with a:
        with pytest.raises(sections.Error):
            b.acquire(timeout=0.05)
