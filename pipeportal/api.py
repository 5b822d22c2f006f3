"""The public API v1 (`/api/v1/`, `Authorization: API-KEY <key>`), assembled from each app's router."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="PipePortal API",
    version="1",
    urls_namespace="api-v1",
    docs_url="/docs",
)
