"""Fault-injection enricher: every request answers INTERNAL (see ../config.pbtxt)."""

from vigil_triton.requests import error_response


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.failure = f"scripted failure: {args['model_name']} is failing"

    def execute(self, requests: list) -> list:
        return [error_response(self.failure, internal=True) for _ in requests]
