"""The error the simulator answers with: an HTTP status and Capital.com's `errorCode`."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by any handler; the app turns it into `{"errorCode": ...}` with `status`."""

    def __init__(self, status: int, error_code: str) -> None:
        super().__init__(f"{status} {error_code}")
        self.status = status
        self.error_code = error_code
