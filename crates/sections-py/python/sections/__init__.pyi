"""sections: named shared memory, zero-copy channels and robust locks between processes (Python and Rust), with handle-counted lifetime."""

import builtins
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeAlias, TypedDict, final

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer

from ._errors import CorruptedError as CorruptedError
from ._errors import DisconnectedError as DisconnectedError
from ._errors import EmptyError as EmptyError
from ._errors import Error as Error
from ._errors import ExistsError as ExistsError
from ._errors import FullError as FullError
from ._errors import InvalidNameError as InvalidNameError
from ._errors import InvalidRangeError as InvalidRangeError
from ._errors import InvalidSizeError as InvalidSizeError
from ._errors import NoSpaceError as NoSpaceError
from ._errors import NotFoundError as NotFoundError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import ReplacedError as ReplacedError
from ._errors import StaleError as StaleError
from ._errors import TimeoutError as TimeoutError
from ._errors import TruncatedError as TruncatedError
from ._errors import UnsupportedError as UnsupportedError
from ._errors import WrongKindError as WrongKindError
from ._errors import WrongVersionError as WrongVersionError

__all__ = [
    "Channel", "CorruptedError", "DisconnectedError", "EmptyError", "Error",
    "Event", "ExistsError", "FullError", "Inheritable", "InvalidNameError",
    "InvalidRangeError", "InvalidSizeError", "Loan", "Message", "Mutex",
    "NoSpaceError", "NotFoundError", "PermissionDeniedError", "Receiver",
    "ReplacedError", "Section", "Semaphore", "Sender", "StaleError",
    "TimeoutError", "TruncatedError", "UnsupportedError", "View",
    "WrongKindError", "WrongVersionError", "gc", "granularity", "list",
    "remove",
]

# Typing-only helpers (not in the runtime module).

# A namespace, file or path argument: converted with os.fspath (bytes paths
# are refused).
_StrPath: TypeAlias = str | os.PathLike[str]
# What the `access` getters report. Arguments accept more spellings,
# case-insensitively ("r", "rw", "read-only", "cow", ...), hence `str`.
_Access: TypeAlias = Literal["read", "readwrite", "copyonwrite"]
_Lifetime: TypeAlias = Literal["counted", "persistent"]
_Wait: TypeAlias = Literal["spin", "spin-then-park", "park"]

class _ListEntry(TypedDict):
    """One entry of `list()`."""

    name: str
    kind: Literal["file", "memory"]
    size: int
    owner_uid: int
    mode: int
    lifetime: _Lifetime
    held: bool | None
    stale: bool
    file: Path | None
    object: str | None

# Module functions. `list` shadows the built-in in this module, hence
# `builtins.list` below.

def list(namespace: _StrPath | None = None) -> builtins.list[_ListEntry]:
    """Every entry of the namespace, as dictionaries."""

def gc(namespace: _StrPath | None = None) -> builtins.list[str]:
    """Removes the names left by holders that died; returns them."""

def remove(name: str, namespace: _StrPath | None = None) -> None:
    """Removes a name (processes that hold it keep their mappings)."""

def granularity() -> int:
    """The alignment of view offsets (the page size on Linux)."""

# Sections.

@final
class Section:
    """A section: a kernel memory object, named or anonymous, backed by memory or by a file."""

    @classmethod
    def create(
        cls,
        name: str,
        size: int,
        *,
        namespace: _StrPath | None = None,
        mode: int = 0o600,
        lifetime: _Lifetime = "counted",
        file: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Section:
        """Creates a named section of `size` bytes (zero-filled); fails with ExistsError if the name is taken."""

    @classmethod
    def open(
        cls,
        name: str,
        access: str = "readwrite",
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Section:
        """Opens an existing named section with `access` ("read" or "readwrite")."""

    @classmethod
    def anonymous(cls, size: int) -> Section:
        """An anonymous section of `size` bytes: no name, gone with its last handle and view."""

    @classmethod
    def from_path(cls, path: _StrPath, access: str = "readwrite") -> Section:
        """A section over an existing file, opened with `access`."""

    def map(self, offset: int = 0, length: int | None = None, access: str | None = None) -> View:
        """Maps `length` bytes (default: to the end) at `offset` (a multiple of `sections.granularity()`) with `access` (default: the section's)."""

    @property
    def size(self) -> int:
        """The size in bytes."""

    @property
    def name(self) -> str | None:
        """The name, or None for an anonymous section."""

    @property
    def access(self) -> _Access:
        """The access of this handle: "read" or "readwrite"."""

    @property
    def kind(self) -> Literal["anonymous", "memory", "file", "named-file"]:
        """"anonymous", "memory", "file" or "named-file"."""

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""

    def close(self) -> None:
        """Closes this handle (views made from it keep the section alive)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class View:
    """A mapped range of a section, exporting its bytes (no copy) through the buffer protocol."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int: ...
    @property
    def length(self) -> int:
        """The view's length in bytes."""

    @property
    def offset(self) -> int:
        """Where the view starts in the section."""

    @property
    def access(self) -> _Access:
        """"read", "readwrite" or "copyonwrite"."""

    @property
    def address(self) -> int:
        """The address of the first byte in this process (for checking where an array's data lies)."""

    @property
    def exports(self) -> int:
        """How many buffers (memoryviews, arrays) of this view are alive."""

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""

    def flush(self) -> None:
        """Writes the view's changes to its file (file-backed sections)."""

    def close(self) -> None:
        """Unmaps the view; BufferError while a memoryview or array of it lives (release or delete those first)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

# Channels.

@final
class Channel:
    """A channel: a bounded ring of variable-length byte messages in one section, named or anonymous."""

    @classmethod
    def create(
        cls,
        name: str,
        capacity: int = 1048576,
        *,
        senders: int = 1,
        namespace: _StrPath | None = None,
        lifetime: _Lifetime = "counted",
        mode: int = 0o600,
        wait: _Wait = "spin-then-park",
        allow_foreign_owner: bool = False,
    ) -> Channel:
        """Creates a named channel with `capacity` bytes of ring."""

    @classmethod
    def anonymous(
        cls,
        capacity: int = 1048576,
        *,
        senders: int = 1,
        wait: _Wait = "spin-then-park",
    ) -> Channel:
        """An anonymous channel: hand it to a child with `share()`."""

    @classmethod
    def open_sender(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        wait: _Wait = "spin-then-park",
        allow_foreign_owner: bool = False,
    ) -> Sender:
        """Connects a sender to the named channel."""

    @classmethod
    def open_receiver(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        wait: _Wait = "spin-then-park",
        allow_foreign_owner: bool = False,
    ) -> Receiver:
        """Connects the receiver to the named channel."""

    @classmethod
    def sender_from_token(cls, token: str, *, wait: _Wait = "spin-then-park") -> Sender:
        """Connects a sender with a token from `share()` (in a child process)."""

    @classmethod
    def receiver_from_token(cls, token: str, *, wait: _Wait = "spin-then-park") -> Receiver:
        """Connects the receiver with a token from `share()`."""

    def sender(self) -> Sender:
        """A sender of this channel."""

    def receiver(self) -> Receiver:
        """The receiver of this channel (one at a time)."""

    def share(self) -> Inheritable:
        """A token a child process connects with (`Channel.sender_from_token`): keep the returned object until the child has started."""

    @property
    def capacity(self) -> int:
        """The ring's capacity in bytes."""

    @property
    def fill(self) -> int:
        """Bytes taken in the ring now."""

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
    def close(self) -> None:
        """Closes this handle (connected endpoints keep the channel alive)."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class Inheritable:
    """What a child needs to connect to an anonymous channel: `token` and, on Unix, the descriptor `fd` it names; keep it until the child has started."""

    @property
    def token(self) -> str:
        """The token."""

    @property
    def fds(self) -> builtins.list[int]:
        """The inherited descriptors the token names (for `subprocess`'s `pass_fds`)."""

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
    def close(self) -> None:
        """Closes this process's inheritable copy."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class Sender:
    """A sender: `send(buffer)` copies any contiguous buffer into the ring; `loan(n)` gives a writable buffer in the ring itself."""

    def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Sends a copy of `data` (any contiguous buffer), waiting for room at most `timeout` seconds (None: as long as it takes)."""

    def try_send(self, data: Buffer) -> None:
        """Sends if there is room now; FullError otherwise."""

    def loan(self, n: int, timeout: float | None = None) -> Loan:
        """A writable buffer of `n` bytes in the ring: fill it in place, then `send()` (or leave a `with` block)."""

    def close(self) -> None:
        """Disconnects this sender (after the receiver got what it sent, it sees DisconnectedError once every sender is gone)."""

    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class Loan:
    """A message being written in place in the ring (`Sender.loan`): a writable buffer until sent or cancelled."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int: ...
    def send(self) -> None:
        """Publishes the message."""

    def cancel(self) -> None:
        """Cancels the message: nothing is sent."""

    def __enter__(self) -> memoryview:
        """A writable memoryview of the loan."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        _exc: BaseException | None = None,
        _tb: TracebackType | None = None,
    ) -> None:
        """Sends on a clean exit, cancels on an exception; BufferError if a buffer made from the memoryview still lives."""

@final
class Receiver:
    """The receiver: `recv()` returns the next message in place (a read-only buffer until released); `recv_bytes()` a copy."""

    def recv(self, timeout: float | None = None) -> Message:
        """The next message, in place, waiting at most `timeout` seconds (None: as long as it takes); releases the previous message."""

    def try_recv(self) -> Message:
        """The next message if there is one now; EmptyError otherwise."""

    def recv_bytes(self, timeout: float | None = None) -> bytes:
        """The next message as bytes (a copy; the message is released)."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Message:
        """Iterating gives messages until every sender is gone."""

    def close(self) -> None:
        """Disconnects the receiver (releasing a held message)."""

    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class Message:
    """A received message, in place in the ring: a read-only buffer (`memoryview(msg)`, `numpy.frombuffer(msg, ...)`) until released."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __len__(self) -> int: ...
    def tobytes(self) -> bytes:
        """A copy of the message."""

    @property
    def address(self) -> int:
        """The address of the first byte (for checking where an array's data lies)."""

    def release(self) -> None:
        """Frees the message's room in the ring; BufferError while a buffer of it lives."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

# Synchronization.

@final
class Mutex:
    """A robust inter-process mutex: if its holder dies holding it, the next `acquire` succeeds and sets `abandoned`."""

    @classmethod
    def create(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Mutex:
        """Creates a named mutex (unlocked)."""

    @classmethod
    def open(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Mutex:
        """Opens a named mutex."""

    def acquire(self, timeout: float | None = None) -> bool:
        """Takes the mutex, waiting at most `timeout` seconds (None: as long as it takes); False if the timeout passed."""

    def release(self) -> None:
        """Releases the mutex (from the thread that acquired it)."""

    @property
    def abandoned(self) -> bool:
        """Whether this acquisition found the previous holder dead."""

    def locked(self) -> bool:
        """Whether a thread of this process holds it through this object."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...

@final
class Event:
    """A named event: manual reset (stays set until `reset`) or auto reset (releases one waiter per `set`)."""

    @classmethod
    def create(
        cls,
        name: str,
        *,
        manual_reset: bool = False,
        initially_set: bool = False,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Event:
        """Creates a named event."""

    @classmethod
    def open(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Event:
        """Opens a named event."""

    def set(self) -> None:
        """Sets the event."""

    def reset(self) -> None:
        """Resets the event."""

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until set, at most `timeout` seconds; False if it passed."""

@final
class Semaphore:
    """A named counting semaphore."""

    @classmethod
    def create(
        cls,
        name: str,
        initial: int,
        maximum: int,
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Semaphore:
        """Creates a named semaphore with `initial` permits, at most `maximum`."""

    @classmethod
    def open(
        cls,
        name: str,
        *,
        namespace: _StrPath | None = None,
        allow_foreign_owner: bool = False,
    ) -> Semaphore:
        """Opens a named semaphore."""

    def acquire(self, timeout: float | None = None) -> bool:
        """Takes a permit, waiting at most `timeout` seconds; False if it passed."""

    def release(self, n: int = 1) -> None:
        """Returns `n` permits."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *args: object) -> None: ...
