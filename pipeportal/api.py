"""The public API v1 (`/api/v1/`, `Authorization: API-KEY <key>`), assembled from each app's router."""

from ninja import NinjaAPI

from apps.applications.api import router as applications_router
from apps.deployments.api import commands_router
from apps.deployments.api import router as deployments_router
from apps.pipeds.api import router as pipeds_router

from .api_support import APIKeyAuth, StrictJSONParser, install_error_handlers

api = NinjaAPI(
    title="PipePortal API",
    version="1",
    description=(
        "Applications, deployments, commands and pipeds of the project an API key belongs to. "
        "Send `Authorization: API-KEY <key>`. See docs/api.md."
    ),
    urls_namespace="api-v1",
    docs_url="/docs",
    auth=APIKeyAuth(),
    parser=StrictJSONParser(),
)
install_error_handlers(api)

api.add_router("/applications", applications_router)
api.add_router("/deployments", deployments_router)
api.add_router("/commands", commands_router)
api.add_router("/pipeds", pipeds_router)
