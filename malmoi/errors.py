"""One project exception. The CLI prints it as one line and exits non-zero; tests match on `code`."""


class MalmoiError(Exception):
    """A user-facing error: a stable code (``E1xx`` input data, ``E2xx`` arguments,
    ``E3xx`` run directories, ``E4xx`` models/inference, ``E5xx`` network) and one line of text."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"
