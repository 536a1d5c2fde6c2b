"""Every exception yolohub raises, under one root.

Each leaf also inherits the builtin a caller would naturally catch (``LookupError`` for unknown
names, ``ValueError`` for bad input, ``OSError`` for transfer and integrity problems), and carries
an ``exit_code`` the CLI uses.  Messages say what was expected, what was found and what to do.

Exit codes (also in the README):

====  ==========================================================
0     success
1     a negative verdict: invalid card, failed verification, claim not reproduced
2     command-line usage error
3     unknown or ambiguous card / architecture name
4     integrity failure (hash or size mismatch)
5     download / network failure
6     offline mode refused a network access
7     card, network and checkpoint do not fit together
8     publish refused
9     bad dataset, image, recipe or other input data
10    any other yolohub error
====  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass


class HubError(Exception):
    """Root of every error yolohub raises on purpose."""

    exit_code = 10


# --- cards and names ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem found in a card: where it is, which field, what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class CardValidationError(HubError, ValueError):
    """A card (or several) failed to parse or validate; carries every finding, not just the first."""

    exit_code = 1

    def __init__(self, findings: list[Finding] | tuple[Finding, ...]):
        self.findings = tuple(findings)
        head = f"{len(self.findings)} problem(s) in card"
        super().__init__(head + ":\n" + "\n".join(f"  {f}" for f in self.findings))


class CardNotFoundError(HubError, LookupError):
    """No card has that name (or that name@version)."""

    exit_code = 3


class AmbiguousNameError(CardNotFoundError):
    """A name matches several cards and nothing says which one is meant."""


class ArchitectureNotFoundError(HubError, LookupError):
    """A card names an architecture that yolomodels does not register."""

    exit_code = 3


# --- binding cards to networks and checkpoints -------------------------------------------------


class BindingError(HubError, ValueError):
    """A card's architecture arguments, the caller's overrides and the builder disagree."""

    exit_code = 7


class CheckpointMismatchError(BindingError):
    """A checkpoint does not load strictly into the network; carries the load report."""

    def __init__(self, message: str, report: object | None = None):
        self.report = report
        super().__init__(message)


class CheckpointError(HubError, ValueError):
    """A checkpoint file cannot be read at all (corrupt, truncated, not a checkpoint)."""

    exit_code = 7


# --- transfer, cache and integrity -------------------------------------------------------------


class DownloadError(HubError, OSError):
    """Every link of an asset failed; the message lists each attempt and why it failed."""

    exit_code = 5


class UnreachableError(DownloadError):
    """A link's host cannot be reached at all: its name does not resolve, it refuses the
    connection, or TLS fails.  Retrying with backoff cannot fix that, so the link is tried once."""


class HTTPStatusError(DownloadError):
    """The server answered a download with a status retrying cannot change (404, 403, ...)."""

    def __init__(self, message: str, *, status: int, reason: str = "", hint: str = ""):
        self.status = status
        self.reason = reason  # "HTTP 404 Not Found"
        self.hint = hint  # what to do about it
        super().__init__(message)


class UnsafeURLError(HubError, ValueError):
    """A link uses a scheme or host yolohub refuses to fetch (only https, loopback http, file)."""

    exit_code = 5


class IntegrityError(HubError, OSError):
    """Bytes on disk or on the wire do not match what the card promises."""

    exit_code = 4


class ChecksumMismatchError(IntegrityError):
    """A file's sha256 (or size) differs from the card's; carries expected/actual values."""

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        actual: str | None = None,
        url: str | None = None,
        size: int | None = None,
        expected_size: int | None = None,
        path: str | None = None,
    ):
        self.expected = expected
        self.actual = actual
        self.url = url
        self.size = size
        self.expected_size = expected_size
        self.path = path
        super().__init__(message)


class OfflineModeError(HubError, ConnectionError):
    """Offline mode is on and the asked-for file is not in the cache."""

    exit_code = 6


class LockTimeoutError(HubError, TimeoutError):
    """Another live process holds the download lock for longer than allowed."""

    exit_code = 5


class CacheError(HubError, OSError):
    """The cache directory cannot be used (not writable, not enough free space, ...)."""

    exit_code = 5


# --- publishing ---------------------------------------------------------------------------------


class PublishError(HubError):
    """Publishing a checkpoint as a card was refused."""

    exit_code = 8


class PublishConflictError(PublishError, FileExistsError):
    """A card with that name and version already exists and --force was not given."""


# --- data given to training, evaluation and prediction -----------------------------------------


class InputDataError(HubError, ValueError):
    """A dataset, image, recipe value or other input cannot be used as given."""

    exit_code = 9


class ClaimNotReproducedError(HubError):
    """Evaluation measured a value outside the card's tolerance around its claim."""

    exit_code = 1


# --- registries and bundles ---------------------------------------------------------------------


class RegistryError(InputDataError):
    """A registry (index, URL, bundle) is not what it claims to be: not a registry, an index that
    fails its schema, an HTML page where JSON was expected, a bundle member escaping its
    directory."""

# --- export and deployment ----------------------------------------------------------------------


class ExportError(HubError):
    """A network could not be exported to the asked-for format."""

    exit_code = 10


class UnsupportedOpError(ExportError):
    """MindSpore's exporter for a format cannot express an operator the network uses.

    ``op`` names the operator; ``fallback`` is the export (MindIR) made instead, if any.
    """

    def __init__(self, message: str, *, op: str | None = None, fallback: object | None = None):
        self.op = op
        self.fallback = fallback
        super().__init__(message)


class ExportVerificationError(ExportError):
    """An exported file, loaded back, does not reproduce the network's outputs closely enough."""

    exit_code = 1
