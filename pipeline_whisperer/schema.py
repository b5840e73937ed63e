"""How drf-spectacular documents our authentication (imported when the app is ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from pipeline_whisperer.auth import API_KEY_HEADER


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "pipeline_whisperer.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
