"""How drf-spectacular documents our authentication and our errors (imported when the app is ready).

`ProblemAutoSchema` adds to every operation the problem+json answers it can give besides its
own success, decided once here from what the view needs (authentication, a path id, a query,
a page, a body) rather than by decorating each view. The answers are shared `components/responses`.
A view whose other errors the rules cannot see declares the status without a body, e.g.
`@extend_schema(responses={200: X, 404: None})`, and gets the same shared answer.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry, ResolvedComponent
from rest_framework.permissions import AllowAny

from pipeline_whisperer.api import BoundedPageNumberPagination
from pipeline_whisperer.auth import API_KEY_HEADER
from pipeline_whisperer.exceptions import PROBLEM_CONTENT_TYPE


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "pipeline_whisperer.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}


_PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem document; other members may follow.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "correlation_id": {"type": "string", "description": "Also in the X-Request-ID response header."},
    },
    "required": ["type", "title", "status", "detail"],
}
_VALIDATION_PROBLEM = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "object",
                    "description": "What was wrong, by field (or by item index for batches).",
                    "additionalProperties": {},
                }
            },
        },
    ]
}
_SCHEMAS = {"Problem": _PROBLEM, "ValidationProblem": _VALIDATION_PROBLEM}

# status: (component name, description, body schema, response headers)
_ERRORS: dict[int, tuple[str, str, str, dict[str, Any]]] = {
    400: ("BadRequest", "Not valid: a field, a query parameter or the JSON body.", "ValidationProblem", {}),
    401: (
        "Unauthorized",
        f"No API key, or one that is unknown, revoked or expired. Send a key in {API_KEY_HEADER}.",
        "Problem",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "The header to authenticate with."}},
    ),
    403: ("Forbidden", "The key may only read, or the session is not staff.", "Problem", {}),
    404: ("NotFound", "Nothing has this id, or the page is past the last one.", "Problem", {}),
    409: ("Conflict", "The change conflicts with the resource's current state.", "Problem", {}),
    413: ("PayloadTooLarge", "The body or the batch is larger than the limit.", "Problem", {}),
    415: ("UnsupportedMediaType", "The body is not application/json.", "Problem", {}),
    429: (
        "TooManyRequests",
        "Too many requests from this client; try again after Retry-After seconds.",
        "Problem",
        {
            "Retry-After": {
                "schema": {"type": "integer", "minimum": 0},
                "required": True,
                "description": "Seconds to wait before the next request.",
            }
        },
    ),
    503: ("ServiceUnavailable", "A dependency (database, cache, broker, mail, model) cannot serve now.", "Problem", {}),
}
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_PAGE_PARAMETER = BoundedPageNumberPagination.page_query_param


class ProblemAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus each operation's documented error answers."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        # An error status the view declared without a body (`404: None`) gets the shared answer too.
        declared = {int(code) for code, response in responses.items() if code.isdigit() and "content" not in response}
        for status in sorted(self._error_statuses(operation) | (declared & _ERRORS.keys())):
            if status in declared or str(status) not in responses:
                responses[str(status)] = {"$ref": f"#/components/responses/{_register_error(registry, status)}"}
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> set[int]:
        statuses = {503}
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses |= {401, 403, 429}
        parameters = {(parameter["in"], parameter["name"]) for parameter in operation.get("parameters", [])}
        if any(location == "path" for location, _ in parameters) or ("query", _PAGE_PARAMETER) in parameters:
            statuses.add(404)
        if any(location == "query" for location, _ in parameters):
            statuses.add(400)
        if "requestBody" in operation:
            statuses |= {400, 413, 415}
        if self.method in _UNSAFE_METHODS:
            statuses.add(409)
        return statuses


def _register_error(registry: ComponentRegistry, status: int) -> str:
    """Register the response component for `status` (and the schemas it names) once."""
    name, description, schema_name, headers = _ERRORS[status]
    for component_name, schema in _SCHEMAS.items():
        registry.register_on_missing(
            ResolvedComponent(component_name, ResolvedComponent.SCHEMA, schema=schema, object=component_name)
        )
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }
    if headers:
        response["headers"] = headers
    registry.register_on_missing(ResolvedComponent(name, ResolvedComponent.RESPONSE, schema=response, object=name))
    return name
