"""The calculator example's service: four pure functions behind one class."""

from __future__ import annotations

from dwf import NonRetryableError


class Calculator:
    """Arithmetic on two numbers; each result names the operation."""

    @staticmethod
    def add(a: float, b: float) -> dict[str, object]:
        return {"result": a + b, "operation": "addition"}

    @staticmethod
    def subtract(a: float, b: float) -> dict[str, object]:
        return {"result": a - b, "operation": "subtraction"}

    @staticmethod
    def multiply(a: float, b: float) -> dict[str, object]:
        return {"result": a * b, "operation": "multiplication"}

    @staticmethod
    def divide(a: float, b: float) -> dict[str, object]:
        if b == 0:
            # Retrying cannot help: fail the step at once (the workflow's on_error takes over).
            raise NonRetryableError("cannot divide by zero")
        return {"result": a / b, "operation": "division"}
