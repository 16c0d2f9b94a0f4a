"""Sections and views: zero-copy buffers, lifetime, closing, bad input."""

import os
import signal

import numpy as np
import pytest

import sections


def test_numpy_array_is_the_view_itself_across_processes(ns, py):
    size = 64 << 20
    with sections.Section.create("frames", size, namespace=ns) as s, s.map() as view:
        a = np.frombuffer(view, dtype=np.uint64)
        # The array's data is the view's memory: no copy.
        assert a.ctypes.data == view.address
        assert a.nbytes == size
        a[:] = np.arange(size // 8, dtype=np.uint64)
        child = py.spawn(
            """
            import sys, numpy as np, sections
            s = sections.Section.open("frames", "read", namespace=sys.argv[1])
            with s.map() as view:
                b = np.frombuffer(view, dtype=np.uint64)
                inside = view.address <= b.ctypes.data < view.address + len(view)
                ok = bool((b == np.arange(len(b), dtype=np.uint64)).all())
                assert not b.flags.writeable, "a read-only view gives a read-only array"
                print(inside, ok, len(b), flush=True)
                del b
            """,
            ns,
        )
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.split() == ["True", "True", str(size // 8)]
        del a


def test_read_only_view_gives_read_only_buffers(ns):
    with sections.Section.create("ro", 4096, namespace=ns):
        s = sections.Section.open("ro", "read", namespace=ns)
        with s.map() as view:
            m = memoryview(view)
            assert m.readonly
            with pytest.raises(TypeError):
                m[0] = 1
            m.release()
        with pytest.raises(sections.PermissionDeniedError):
            s.map(access="readwrite")


def test_a_view_with_a_live_buffer_refuses_to_close(ns):
    s = sections.Section.anonymous(1 << 16)
    view = s.map()
    arr = np.frombuffer(view, dtype=np.uint8)
    m = memoryview(view)
    assert view.exports == 2
    with pytest.raises(BufferError):
        view.close()
    m.release()
    with pytest.raises(BufferError):
        view.close()
    arr[0] = 7  # still mapped: the close was refused
    del arr
    view.close()
    assert view.closed
    with pytest.raises(ValueError):
        memoryview(view)
    with pytest.raises(ValueError):
        len(view)


def test_lifetime_is_handle_counted_without_a_resource_tracker(ns, py):
    child = py.spawn(
        """
        import sys, sections
        s = sections.Section.create("held", 4096, namespace=sys.argv[1])
        v = s.map(); v_bytes = memoryview(v); v_bytes[:5] = b"alive"
        print("ready", flush=True)
        sys.stdin.readline()
        """,
        ns,
        stdin=__import__("subprocess").PIPE,
    )
    py.wait_line(child, "ready")
    # Another process's handle keeps it, and sees its bytes.
    with sections.Section.open("held", namespace=ns) as s, s.map() as v:
        assert bytes(memoryview(v)[:5]) == b"alive"
    # The creator ends normally: no one holds it, the name goes with it.
    child.stdin.write("\n")
    child.stdin.flush()
    child.wait(timeout=30)
    with pytest.raises(FileNotFoundError):
        sections.Section.open("held", namespace=ns)


def test_kill_9_leaves_a_stale_name_that_gc_removes(ns, py):
    child = py.spawn(
        """
        import sys, sections
        s = sections.Section.create("crash", 4096, namespace=sys.argv[1])
        print("ready", flush=True)
        import time; time.sleep(600)
        """,
        ns,
    )
    py.wait_line(child, "ready")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    with pytest.raises(sections.StaleError):
        sections.Section.open("crash", namespace=ns)
    [entry] = [e for e in sections.list(namespace=ns) if e["name"] == "crash"]
    assert entry["stale"] is True
    assert sections.gc(namespace=ns) == ["crash"]
    with pytest.raises(sections.NotFoundError):
        sections.Section.open("crash", namespace=ns)
    # And create reclaims a stale name too.
    assert sections.gc(namespace=ns) == []


def test_file_backed_section_and_flush(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\0" * 8192)
    with sections.Section.from_path(path) as s, s.map() as view:
        memoryview(view)[:4] = b"data"
        view.flush()
    assert path.read_bytes()[:4] == b"data"
    with sections.Section.from_path(path, "read") as s, s.map(offset=4096) as view:
        assert view.offset == 4096 and len(view) == 4096 and view.access == "read"


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "x" * 300])
def test_names_rust_refuses_are_refused(ns, name):
    with pytest.raises(sections.InvalidNameError) as e:
        sections.Section.create(name, 4096, namespace=ns)
    assert isinstance(e.value, ValueError) and e.value.kind == "InvalidName"
    assert os.listdir(ns) == [], "nothing was created for a refused name"


def test_a_nul_in_a_name_is_refused(ns):
    with pytest.raises(ValueError):
        sections.Section.create("bad\0name", 4096, namespace=ns)
    assert os.listdir(ns) == []


@pytest.mark.parametrize("name", ["esc\x1b[2J", "nl\nname", "tab\tname", "grüße"])
def test_names_rust_accepts_work_and_are_escaped_in_messages(ns, name):
    with sections.Section.create(name, 4096, namespace=ns) as s:
        assert s.name == name
        assert [e["name"] for e in sections.list(namespace=ns)] == [name]
        with pytest.raises(FileExistsError) as e:
            sections.Section.create(name, 4096, namespace=ns)
        assert e.value.name == name
        # The message shows the name escaped: no raw control character.
        assert not any(c in str(e.value) for c in "\x1b\n\t")
    with pytest.raises(FileNotFoundError):
        sections.Section.open(name, namespace=ns)


def test_bad_arguments_raise_never_crash(ns):
    s = sections.Section.create("args", 8192, namespace=ns)
    for call, exc in [
        (lambda: sections.Section.create("neg", -1, namespace=ns), OverflowError),
        (lambda: sections.Section.create("zero", 0, namespace=ns), sections.InvalidSizeError),
        (lambda: sections.Section.create("huge", 1 << 62, namespace=ns), sections.Error),
        (lambda: sections.Section.create(42, 4096, namespace=ns), TypeError),
        (lambda: sections.Section.open("args", "rwx", namespace=ns), ValueError),
        (lambda: s.map(offset=1), sections.InvalidRangeError),
        (lambda: s.map(offset=0, length=1 << 20), sections.InvalidRangeError),
        (lambda: s.map(offset=1 << 40), sections.Error),
        (lambda: s.map(access="nope"), ValueError),
        (lambda: s.map(length=-1), OverflowError),
        (lambda: sections.Section.create("args", 4096, namespace=ns), FileExistsError),
        (lambda: sections.Section.open("missing", namespace=ns), FileNotFoundError),
        (lambda: sections.Section.create("n", 4096, namespace=ns + "/nonexistent"), sections.Error),
        (lambda: sections.Section.create("n", 4096, namespace=ns, lifetime="forever"), ValueError),
    ]:
        with pytest.raises(exc):
            call()
    s.close()
    with pytest.raises(ValueError):
        s.map()
    with pytest.raises(ValueError):
        s.size
    assert not any(name.startswith(("neg", "zero", "huge", "n")) for name in os.listdir(ns))
