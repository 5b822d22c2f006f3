"""Template helpers of the portal: relative times, status tones, versions, labels, durations."""

from datetime import UTC, datetime, timedelta

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.deployments.choices import WAIT_APPROVAL, DeploymentStatus, StageStatus

register = template.Library()

# One colour language for the whole portal: blue runs, amber waits for a person, green succeeded,
# red failed, grey stopped or did not run.
DEPLOYMENT_TONES = {
    DeploymentStatus.PENDING: "pending",
    DeploymentStatus.PLANNED: "pending",
    DeploymentStatus.RUNNING: "running",
    DeploymentStatus.ROLLING_BACK: "rolling-back",
    DeploymentStatus.SUCCESS: "success",
    DeploymentStatus.FAILURE: "failure",
    DeploymentStatus.CANCELLED: "cancelled",
}
STAGE_TONES = {
    StageStatus.NOT_STARTED_YET: "pending",
    StageStatus.RUNNING: "running",
    StageStatus.SUCCESS: "success",
    StageStatus.FAILURE: "failure",
    StageStatus.CANCELLED: "cancelled",
    StageStatus.SKIPPED: "skipped",
    StageStatus.EXITED: "skipped",
}
STAGE_ICONS = {
    "pending": "○",
    "running": "●",
    "waiting": "❚❚",
    "success": "✓",
    "failure": "✕",
    "cancelled": "⊘",
    "skipped": "↷",
}


def is_waiting_for_approval(stage) -> bool:
    return stage.name == WAIT_APPROVAL and stage.status == StageStatus.RUNNING


@register.filter
def stage_tone(stage) -> str:
    """The colour class of a stage box; a running approval stage waits for a person (amber)."""
    if is_waiting_for_approval(stage):
        return "waiting"
    return STAGE_TONES.get(stage.status, "pending")


@register.filter
def stage_icon(stage) -> str:
    return STAGE_ICONS[stage_tone(stage)]


@register.filter
def stage_label(stage) -> str:
    if is_waiting_for_approval(stage):
        return "Waiting for approval"
    return StageStatus(stage.status).label if stage.status in StageStatus.values else stage.status


@register.filter
def deployment_tone(status: str) -> str:
    return DEPLOYMENT_TONES.get(status, "pending")


STAGE_TITLES = {WAIT_APPROVAL: "Approval", "WAIT": "Wait", "SCRIPT_RUN": "Script"}


@register.filter
def stage_title(name: str) -> str:
    """ECS_CANARY_ROLLOUT reads as "ECS canary rollout": the platform prefix stays in capitals."""
    if name in STAGE_TITLES:
        return STAGE_TITLES[name]
    words = (name or "").split("_")
    if len(words) > 1 and words[0] in ("ECS", "K8S"):
        return f"{words[0]} " + " ".join(words[1:]).lower()
    return " ".join(words).capitalize()


@register.simple_tag
def reltime(value: datetime | None, empty: str = "—"):
    """A relative time ("3 minutes ago") with the exact UTC time on hover and in `datetime`."""
    if not value:
        return empty
    exact = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{}" data-rel>{}</time>',
        value.isoformat(),
        exact.strftime("%Y-%m-%d %H:%M:%S UTC"),
        naturaltime(value),
    )


@register.filter
def duration(start: datetime | None, end: datetime | None = None) -> str:
    """`start|duration:end`, or up to now when `end` is missing: 45s, 3m 12s, 2h 5m."""
    if not start:
        return ""
    seconds = int(((end or timezone.now()) - start) / timedelta(seconds=1))
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


@register.filter
def image_tags(versions) -> list[dict]:
    """[{tag, url}] from a deployment's versions: PipeCD's ArtifactVersion has the tag as `version`."""
    tags = []
    for item in versions or []:
        if not isinstance(item, dict):
            continue
        url = str(item.get("url") or "")
        tag = str(item.get("version") or "") or (url.rsplit(":", 1)[-1] if ":" in url else url)
        if tag:
            tags.append({"tag": tag, "name": str(item.get("name") or ""), "url": url})
    return tags


@register.filter
def label_pairs(labels) -> list[str]:
    if not isinstance(labels, dict):
        return []
    return [f"{key}:{value}" for key, value in sorted(labels.items())]


@register.filter
def path_breaks(path) -> str:
    """A path that may wrap after each `/` (and only mid-segment when one segment alone is too long)."""
    return mark_safe("/<wbr>".join(conditional_escape(part) for part in str(path or "").split("/")))  # noqa: S308


@register.filter
def startswith(value, prefix: str) -> bool:
    return str(value or "").startswith(prefix)


SYNC_TONES = {
    "SYNCED": "success",
    "DEPLOYING": "running",
    "OUT_OF_SYNC": "waiting",
    "INVALID_CONFIG": "failure",
    "UNKNOWN": "pending",
}


@register.filter
def sync_tone(status: str) -> str:
    return SYNC_TONES.get(status, "pending")


@register.filter
def get_item(mapping, key):
    """`mapping|get_item:key` for dict keys that are not valid template identifiers."""
    if isinstance(mapping, dict):
        return mapping.get(key) or {}
    return {}


@register.simple_tag
def reltime_iso(value: str, empty: str = "—"):
    """`reltime` for an ISO 8601 string as the piped reports it; unparsable text is shown as is."""
    if not value:
        return empty
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return reltime(parsed, empty)


# Row helpers as tags rather than `{% include %}`s: a list renders them 50 times per page, and an include
# costs a template render of its own each time.


@register.simple_tag
def deployment_badge(deployment, waiting=()):
    """A deployment's status badge; amber "Waiting for approval" when it is in `waiting`."""
    if deployment.id in waiting:
        tone, label = "waiting", "Waiting for approval"
    else:
        tone, label = deployment_tone(deployment.status), deployment.get_status_display()
    return format_html(
        '<span class="badge tone-{}" title="{}"><span class="dot" aria-hidden="true"></span>{}</span>',
        tone,
        deployment.status_reason,
        label,
    )


@register.simple_tag
def version_chips(versions, commit: str = ""):
    """The image tags of a deployment (the full image on hover), else its short commit."""
    tags = image_tags(versions)
    if tags:
        return format_html_join(
            " ",
            '<code class="version" title="{}">{}</code>',
            ((t["url"] or t["name"], t["tag"]) for t in tags),
        )
    if commit:
        return format_html(
            '<code class="version muted" title="No image version recorded; commit">{}</code>', commit[:7]
        )
    return mark_safe('<span class="muted">—</span>')


@register.simple_tag
def label_chips(labels):
    return format_html_join("", '<span class="label">{}</span>', ((pair,) for pair in label_pairs(labels)))
