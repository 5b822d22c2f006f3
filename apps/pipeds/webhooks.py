"""Git webhooks: `POST /webhooks/git?project=<id>` with a GitHub push event tells the owning pipeds to fetch now.

The signature is GitHub's `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 of the raw body keyed with the
project's `git_webhook_secret`, compared in constant time. An unknown project and a bad or missing signature
get the same 401, so nobody can learn which projects exist without holding a secret.

The pushed repository is matched against the repositories the pipeds reported (`Piped.repositories`) by
normalised remote URL (`git@host:org/repo.git`, `ssh://git@host/org/repo`, `https://host/org/repo` are one
repository) and branch (`ref: refs/heads/<branch>`). Each matching piped gets a fetch request that it picks
up with its next command poll (≤ 1 s).
"""

import hashlib
import hmac
import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.projects.models import Project

from . import piped_services
from .models import Piped

SIGNATURE_HEADER = "HTTP_X_HUB_SIGNATURE_256"
MAX_BODY_BYTES = 5 * 1024 * 1024
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


def normalize_remote(remote: str) -> str:
    """One spelling per repository: `host/org/repo` (lowercase, no user, port, scheme or `.git`).

    Local repositories (`/srv/git/app.git`, `file:///srv/git/app.git`) become `file:/srv/git/app`.
    """
    remote = (remote or "").strip()
    if not remote:
        return ""
    if "://" in remote:
        try:
            parts = urlsplit(remote)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return remote.lower()
        if parts.scheme == "file":
            return "file:" + _strip_git(unquote(parts.path)).rstrip("/")
        host = (parts.hostname or "").lower()
        repo_path = unquote(parts.path)
    elif remote.startswith("/"):
        return "file:" + _strip_git(remote).rstrip("/")
    else:
        match = _SCP_LIKE.match(remote)
        if not match:
            return remote.lower()
        host, repo_path = match.group("host").lower(), match.group("path")
    return f"{host}/{_strip_git(repo_path).strip('/').lower()}"


def _strip_git(value: str) -> str:
    value = value.rstrip("/")
    return value[:-4] if value.endswith(".git") else value


def signature_matches(secret: str, body: bytes, header: str) -> bool:
    if not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def _unauthorized() -> JsonResponse:
    return JsonResponse({"detail": "Unauthorized"}, status=401)


def _push_payload(content_type: str, body: bytes) -> dict | None:
    """The push event, sent as JSON or (GitHub's other choice) as a form field `payload`."""
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            return json.loads(parse_qs(body.decode()).get("payload", [""])[0])
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def matching_pipeds(project_id: str, remotes: set[str], branch: str) -> list[tuple]:
    """(piped_id, repo_id) of every enabled piped of the project that watches this repository and branch."""
    matches = []
    for piped in Piped.objects.filter(project_id=project_id, disabled=False).only("id", "repositories"):
        for repo in piped.repositories or []:
            if normalize_remote(repo.get("remote", "")) in remotes and (
                not repo.get("branch") or repo.get("branch") == branch
            ):
                matches.append((piped.id, repo["repo_id"]))
    return matches


@csrf_exempt
@require_POST
def git_webhook(request: HttpRequest) -> JsonResponse:
    project_id = request.GET.get("project", "")
    project = (
        Project.objects.filter(pk=project_id).only("id", "git_webhook_secret").first() if project_id else None
    )
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
    if length > MAX_BODY_BYTES:
        return JsonResponse({"detail": "The body is too large."}, status=413)
    # Read the stream directly: Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) would refuse large pushes.
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return JsonResponse({"detail": "The body is too large."}, status=413)
    if project is None or not signature_matches(
        project.git_webhook_secret, body, request.META.get(SIGNATURE_HEADER, "")
    ):
        return _unauthorized()
    event = request.headers.get("X-GitHub-Event", "push")
    if event == "ping":
        return JsonResponse({"ok": True, "event": "ping"})
    if event != "push":
        return JsonResponse({"ok": True, "event": event, "ignored": True}, status=202)
    payload = _push_payload(request.META.get("CONTENT_TYPE", ""), body)
    if not isinstance(payload, dict):
        return JsonResponse({"detail": "The body is not a JSON push event."}, status=400)
    ref = str(payload.get("ref") or "")
    if not ref.startswith("refs/heads/"):
        return JsonResponse(
            {"ok": True, "ignored": True, "detail": f"{ref or 'no ref'} is not a branch."}, status=202
        )
    branch = ref[len("refs/heads/") :]
    repository = payload.get("repository") or {}
    remotes = {
        normalize_remote(str(repository.get(key) or ""))
        for key in ("clone_url", "ssh_url", "git_url", "html_url", "url", "svn_url")
    } - {""}
    matches = matching_pipeds(project.id, remotes, branch)
    if matches:
        piped_services.request_fetch(matches)
    return JsonResponse(
        {
            "ok": True,
            "matched": [{"piped_id": str(piped_id), "repo_id": repo_id} for piped_id, repo_id in matches],
        }
    )


urlpatterns = [path("git", git_webhook, name="git-webhook")]
