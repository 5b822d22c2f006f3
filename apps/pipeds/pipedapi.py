"""The piped API (`/api/piped/v1/`): what a piped calls, authenticated with its PIPED-TOKEN."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="PipePortal piped API",
    version="1",
    urls_namespace="api-piped-v1",
    docs_url=None,
)
