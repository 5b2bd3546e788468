"""The error types a user can meet. Each carries a message meant to be read by a student, not a stack trace."""


class ResnetVizError(Exception):
    """Base class: anything the CLI or the app should show as a plain message rather than a traceback."""


class ConfigError(ResnetVizError, ValueError):
    """A model or training configuration that cannot be built or run (bad depth, width, family, shortcut, memory)."""


class DataError(ResnetVizError, RuntimeError):
    """CIFAR-10 cannot be found, downloaded or read."""


class ImageError(ResnetVizError, ValueError):
    """An uploaded file that is not a usable image."""


class RunStoreError(ResnetVizError, RuntimeError):
    """A run that does not exist or cannot be read."""


class PackError(ResnetVizError, ValueError):
    """A lecture pack that cannot be made, or a file that is not a usable lecture pack."""


class StorageError(RunStoreError, OSError):
    """A file that could not be saved: a full disk, a read-only folder. Its message says which folder and, where it
    is known, how much room the file needed; the file it would have replaced is left as it was. It is also an
    OSError, so code that already copes with a failed write (a heartbeat, a best-effort cache) still does."""
