"""Error answers in MaintainX's own shapes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the JSON ``body`` (None: no body, as for 401)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        """Headers of its own (a 429's rate limit), over the request's."""


def validation_error(message: str, field_path: str | None = None, value: Any = None) -> ApiError:
    """400 ``{"errors": [{"error", "fieldPath"?, "fieldValue"?}]}`` (validation errors)."""
    entry: dict[str, Any] = {"error": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
        if isinstance(value, str | int | float | bool):
            entry["fieldValue"] = value
    return ApiError(400, {"errors": [entry]})


def query_error(message: str) -> ApiError:
    """400 ``{"error": ...}`` (errors in query parameters)."""
    return ApiError(400, {"error": message})


def not_found(kind: str) -> ApiError:
    return ApiError(
        404, {"error": f"Could not find the specified {kind} or the user cannot access it."}
    )
