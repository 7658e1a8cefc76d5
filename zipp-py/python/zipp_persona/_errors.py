"""zipp's exception classes: one per ``zipp_core::ErrorKind``.

Each kind has a stable name (``"schema"``) and code (3, the C status). The class of a kind is
named after it (``schema`` → ``SchemaError``) and found by name when the native module raises
(:func:`_from_core`). They are plain Python classes because each also derives from the
builtin exception a Python caller would catch (``ValueError``, ``OSError`` …), and native
classes cannot have two bases. A kind that zipp-core has and this file does not yet declare
still gets its own class, made on first use (a ``ZippError`` and ``RuntimeError``), so a new
kind needs no edit here to be raised correctly; the tests ask for it to be declared.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, NamedTuple, Optional, Tuple, Type


class Location(NamedTuple):
    """Where in an input a problem was found (``None`` where not known)."""

    file: Optional[str]
    line: Optional[int]
    column: Optional[int]
    field: Optional[str]


class ZippError(Exception):
    """Base of every error zipp raises. ``str(err)`` is zipp-core's full message."""

    kind: ClassVar[str] = ""
    #: The kind's stable numeric code (zipp's C status for it); 0 only on this base class.
    code: ClassVar[int] = 0
    #: The message without its location (for parse/schema errors) or the full text.
    message: str
    #: File, JSONL line, column and field path of a parse or schema error, else ``None``.
    location: Optional[Location]
    #: The file or folder involved (io and model errors), else ``None``.
    path: Optional[str]
    #: How to fix a model error (e.g. the provisioning command), else ``None``.
    hint: Optional[str]

    def __init__(
        self,
        text: str,
        *,
        message: Optional[str] = None,
        location: Optional[Location] = None,
        path: Optional[str] = None,
        hint: Optional[str] = None,
        errno: Optional[int] = None,
    ) -> None:
        super().__init__(text)
        self.message = text if message is None else message
        self.location = location
        self.path = path
        self.hint = hint
        if isinstance(self, OSError):
            # The OSError-derived kinds fill OSError's own attributes as the builtin would.
            os_error: OSError = self
            os_error.errno = errno
            os_error.filename = path

    def __str__(self) -> str:
        # OSError would render "[Errno n] …" from errno/filename; zipp's text says more.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Tuple[Callable[..., "ZippError"], Tuple[Any, ...]]:
        # Keyword-only arguments do not survive BaseException's default pickling, and
        # multiprocessing pickles exceptions raised in workers.
        errno = self.errno if isinstance(self, OSError) else None
        return (_restore, (type(self), str(self), self.message, self.location, self.path, self.hint, errno))


def _restore(
    cls: type,
    text: str,
    message: str,
    location: Optional[Location],
    path: Optional[str],
    hint: Optional[str],
    errno: Optional[int],
) -> ZippError:
    err: ZippError = cls(text, message=message, location=location, path=path, hint=hint, errno=errno)
    return err


class IoError(ZippError, OSError):
    """Reading or writing a file failed (``errno`` and ``filename`` as for ``OSError``)."""

    kind = "io"
    code = 1


class ParseError(ZippError, ValueError):
    """The input is not well-formed JSON."""

    kind = "parse"
    code = 2


class SchemaError(ZippError, ValueError):
    """Well-formed input that is not a valid persona, request or method spec."""

    kind = "schema"
    code = 3


class InvalidInputError(ZippError, ValueError):
    """An argument is out of its domain (empty prompt, zero budget, bad temperature …)."""

    kind = "invalid_input"
    code = 4


class ModelNotFoundError(ZippError, FileNotFoundError):
    """A model file is missing; ``hint`` says how to provision it."""

    kind = "model_not_found"
    code = 5


class ModelInvalidError(ZippError, ValueError):
    """A model file exists but is corrupt or does not match the expected model."""

    kind = "model_invalid"
    code = 6


class TokenizerError(ZippError, ValueError):
    """Tokenization failed."""

    kind = "tokenizer"
    code = 7


class ComputeError(ZippError, RuntimeError):
    """The numeric backend failed while running a model."""

    kind = "compute"
    code = 8


class InternalError(ZippError, RuntimeError):
    """A bug in zipp: a contained panic, or an object a panic left unusable."""

    kind = "internal"
    code = 11


class RemoteError(ZippError, RuntimeError):
    """A remote model server (OpenAI-compatible) could not be reached, timed out, refused
    the request or answered garbage; the message never contains an API key."""

    kind = "remote"
    code = 12


class CancelledError(ZippError, RuntimeError):
    """The caller cancelled a long computation (an image generation) before it finished
    (a step callback returned ``False``); Ctrl-C raises ``KeyboardInterrupt`` instead."""

    kind = "cancelled"
    code = 13


_BY_KIND: Dict[str, Type[ZippError]] = {
    cls.kind: cls
    for cls in (
        IoError,
        ParseError,
        SchemaError,
        InvalidInputError,
        ModelNotFoundError,
        ModelInvalidError,
        TokenizerError,
        ComputeError,
        InternalError,
        RemoteError,
        CancelledError,
    )
}


def _class_name(kind: str) -> str:
    """``model_not_found`` → ``ModelNotFoundError``."""
    return "".join(part.capitalize() for part in kind.split("_")) + "Error"


def _class_for(kind: str, code: int) -> Type[ZippError]:
    cls = _BY_KIND.get(kind)
    if cls is None:
        # A kind newer than this file: its own class, derived from its name and code.
        made = type(_class_name(kind), (ZippError, RuntimeError), {"kind": kind, "code": code, "__module__": __name__})
        cls = _BY_KIND.setdefault(kind, made)
    return cls


def _from_core(
    kind: str,
    code: int,
    text: str,
    message: str,
    location: Optional[Location],
    path: Optional[str],
    hint: Optional[str],
    errno: Optional[int],
) -> ZippError:
    """The exception for a zipp-core error (called by the native module)."""
    return _class_for(kind, code)(text, message=message, location=location, path=path, hint=hint, errno=errno)
