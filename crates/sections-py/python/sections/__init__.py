"""sections: named shared memory, zero-copy channels and robust locks
between processes (Python and Rust), with handle-counted lifetime.

    import numpy as np
    import sections

    with sections.Section.create("frames", 64 << 20) as s, s.map() as view:
        a = np.frombuffer(view, dtype=np.uint8)   # the shared bytes, no copy
        a[:] = 1
        del a                                     # before the view closes

Every object is the Rust library's: a Rust process opens the same names.
See the README's "Python" section.
"""

from ._errors import (
    CorruptedError,
    DisconnectedError,
    EmptyError,
    Error,
    ExistsError,
    FullError,
    InvalidNameError,
    InvalidRangeError,
    InvalidSizeError,
    NoSpaceError,
    NotFoundError,
    PermissionDeniedError,
    ReplacedError,
    StaleError,
    TimeoutError,
    TruncatedError,
    UnsupportedError,
    WrongKindError,
    WrongVersionError,
)
from ._sections import (
    Channel,
    Event,
    Inheritable,
    Loan,
    Message,
    Mutex,
    Receiver,
    Section,
    Semaphore,
    Sender,
    View,
    gc,
    granularity,
    list,
    remove,
)

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
