"""The exceptions of `sections`: every one is a `sections.Error`, and also
the built-in exception that fits where there is one (so
`except FileNotFoundError` catches a missing name)."""

import builtins


class Error(Exception):
    """An error from sections. Attributes: `kind` (the library's error kind,
    e.g. "NotFound"), `operation` (what was being done), `name` (the
    object's name, or None)."""

    kind: str = "Other"
    operation: str = ""
    name: "str | None" = None


class NotFoundError(Error, FileNotFoundError):
    """No object of that name (or the file behind it is gone)."""


class ExistsError(Error, FileExistsError):
    """An object of that name exists already."""


class PermissionDeniedError(Error, PermissionError):
    """The OS refused access, the object is another user's, or a write
    through a read-only handle."""


class InvalidNameError(Error, ValueError):
    """Not a valid name: empty, with '/' or NUL, '.' or '..', too long."""


class InvalidRangeError(Error, ValueError):
    """An offset or length is unaligned or outside the section or view."""


class InvalidSizeError(Error, ValueError):
    """A size is zero or too large (a message larger than the ring)."""


class StaleError(Error):
    """The name was left by a holder that died; `gc()` removes it."""


class ReplacedError(Error):
    """The name now refers to another object than the one created."""


class TruncatedError(Error):
    """Another process shrank the file under the view."""


class FullError(Error):
    """No room in the channel now (`try_send`)."""


class EmptyError(Error):
    """No message now (`try_recv`)."""


class TimeoutError(Error, builtins.TimeoutError):
    """The timeout passed."""


class DisconnectedError(Error, ConnectionError):
    """The other side of the channel is gone (every sender, or the
    receiver)."""


class CorruptedError(Error):
    """The shared memory holds what no peer following the protocol
    writes."""


class WrongKindError(Error):
    """The name is another kind of object."""


class WrongVersionError(Error):
    """The object was made by an incompatible version."""


class UnsupportedError(Error):
    """Not available on this platform."""


class NoSpaceError(Error, OSError):
    """The file system or tmpfs behind the object is full."""
