"""Slack receivers: a message a person wants to read (Block Kit in a coloured attachment), and one POST.

Piped side: imports no Django models. A receiver with `hookURL` posts to that incoming webhook; one with
`channelID` and an OAuth token calls `chat.postMessage` (the Slack API answers 200 with `ok: false` on
errors, which count as failures; `ratelimited` and Slack's own transient errors are retried).
"""

from __future__ import annotations

import json

from apps.core.times import read_time as parse_time

from .builders import triggered_by
from .delivery import Attempt, post
from .events import Event, format_seconds

GREEN, RED, AMBER, BLUE, GREY = "#2eb886", "#d50200", "#daa038", "#1f6feb", "#9ca3af"
STYLE = {
    "DEPLOYMENT_TRIGGERED": (":inbox_tray:", BLUE),
    "DEPLOYMENT_PLANNED": (":memo:", BLUE),
    "DEPLOYMENT_STARTED": (":arrow_forward:", BLUE),
    "DEPLOYMENT_WAIT_APPROVAL": (":raised_hand:", AMBER),
    "DEPLOYMENT_APPROVED": (":ok_hand:", GREEN),
    "DEPLOYMENT_ROLLING_BACK": (":rewind:", AMBER),
    "DEPLOYMENT_SUCCEEDED": (":white_check_mark:", GREEN),
    "DEPLOYMENT_FAILED": (":x:", RED),
    "DEPLOYMENT_CANCELLED": (":no_entry_sign:", GREY),
    "DEPLOYMENT_TRIGGER_FAILED": (":x:", RED),
    "APPLICATION_SYNCED": (":white_check_mark:", GREEN),
    "APPLICATION_OUT_OF_SYNC": (":warning:", AMBER),
    "STAGE_STARTED": (":arrow_forward:", BLUE),
    "STAGE_SUCCEEDED": (":white_check_mark:", GREEN),
    "STAGE_FAILED": (":x:", RED),
    "STAGE_CANCELLED": (":no_entry_sign:", GREY),
    "STAGE_SKIPPED": (":fast_forward:", GREY),
    "PIPED_STARTED": (":large_green_circle:", GREEN),
    "PIPED_STOPPED": (":white_circle:", GREY),
    "PIPED_OFFLINE": (":red_circle:", RED),
}
REMINDER_EMOJI = ":alarm_clock:"
OUTCOMES = {"SUCCESS": "Succeeded", "FAILURE": "Failed", "CANCELLED": "Cancelled"}
# Slack's limits: 10 fields per section, 2,000 characters per field, 3,000 per section text.
MAX_FIELDS, MAX_FIELD, MAX_TEXT = 10, 2000, 3000
RETRIED_API_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable"})


def escape(text: str) -> str:
    """Slack's mrkdwn needs &, < and > escaped (they start links and mentions)."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, text: str) -> str:
    return f"<{url}|{escape(text)}>" if url else escape(text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention_text(users: list[str], groups: list[str]) -> str:
    """`<@U123>` for people, `<!subteam^S123>` for user groups (given as IDs, or already in Slack's form)."""
    out = []
    for user in users:
        user = user.removeprefix("@")
        out.append(user if user.startswith("<") else f"<@{user}>")
    for group in groups:
        out.append(group if group.startswith("<") else f"<!subteam^{group}>")
    return " ".join(dict.fromkeys(out))


def _commit_field(commit: dict) -> str:
    text = link(commit.get("url", ""), commit["short_hash"])
    if commit.get("title"):
        text += f" {escape(commit['title'])}"
    if commit.get("author"):
        text += f" · {escape(commit['author'])}"
    return text


def _labels(labels: dict) -> str:
    return ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in sorted(labels.items()))


def fields(event: Event) -> list[tuple[str, str]]:
    """(label, mrkdwn value) pairs shown under the title, in reading order."""
    out: list[tuple[str, str]] = []
    app, deployment, stage = event.application, event.deployment, event.stage
    if event.group == "PIPED":
        out.append(("Piped", link(event.piped.get("url", ""), event.piped.get("name", ""))))
        if event.piped.get("version"):
            out.append(("Version", escape(event.piped["version"])))
        out.append(("Project", escape(event.project_id)))
        return out
    if app:
        out.append(("Application", link(app.get("url", ""), app["name"])))
    if event.labels:
        out.append(("Labels", _labels(event.labels)))
    if event.commit:
        out.append(("Commit", _commit_field(event.commit)))
    if deployment is not None:
        trigger = {**deployment["trigger"], "commit": {"author": (event.commit or {}).get("author")}}
        out.append(("Triggered by", escape(triggered_by({"trigger": trigger}))))
        if event.type == "DEPLOYMENT_PLANNED":
            out.append(("Strategy", escape(deployment["sync_strategy"].replace("_", " ").lower())))
            if deployment["summary"]:
                out.append(("Plan", escape(deployment["summary"])))
        if deployment["status"] in OUTCOMES and event.group == "DEPLOYMENT":
            out.append(("Outcome", OUTCOMES[deployment["status"]]))
            if deployment.get("duration_seconds") is not None:
                out.append(("Duration", format_seconds(deployment["duration_seconds"])))
    if stage is not None:
        label = "Waiting at" if event.type == "DEPLOYMENT_WAIT_APPROVAL" else "Stage"
        out.append((label, f"{escape(stage['name'])} ({escape(stage['id'])})"))
    approval = event.approval or {}
    if event.type == "DEPLOYMENT_WAIT_APPROVAL":
        approvers = approval.get("approvers") or []
        needed = approval.get("min_approver_num") or 1
        who = ", ".join(escape(a) for a in approvers) if approvers else "any Editor or Admin"
        out.append(("Approvers", f"{who} · {needed} needed"))
        if approval.get("approved_by"):
            out.append(("Approved so far", ", ".join(escape(a) for a in approval["approved_by"])))
        deadline = parse_time(approval.get("deadline"))
        if deadline is not None:
            left = (deadline - event.occurred_at).total_seconds()
            out.append(("Times out", f"in {format_seconds(left)}" if left > 0 else "now"))
    if event.type == "DEPLOYMENT_APPROVED" and approval.get("approved_by"):
        out.append(("Approved by", ", ".join(escape(a) for a in approval["approved_by"])))
    if event.sync_state:
        short = event.sync_state.get("short_reason") or ""
        status = event.sync_state.get("status", "").replace("_", " ").lower()
        out.append(("Sync state", escape(f"{status}: {short}" if short else status)))
    return out


# Where the reason only repeats the title ("The deployment completed successfully", "Approved by …").
QUIET_REASONS = frozenset({"DEPLOYMENT_SUCCEEDED", "DEPLOYMENT_APPROVED", "STAGE_SUCCEEDED", "STAGE_STARTED"})
BUTTONS = {
    "DEPLOYMENT_WAIT_APPROVAL": "Review and approve",
}


def payload(event: Event, *, users: list[str] = (), groups: list[str] = ()) -> dict:
    """The chat message for an event; `users`/`groups` are mentioned under the title."""
    emoji, color = STYLE.get(event.type, (":information_source:", GREY))
    if event.reminder:
        emoji = REMINDER_EMOJI
    mentions = mention_text(list(users), list(groups))
    title = f"{emoji} *{link(event.link, event.summary)}*"
    if mentions:
        title += f"\n{mentions}"
    blocks: list[dict] = []
    pairs = fields(event)[:MAX_FIELDS]
    if pairs:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{label}*\n{value}", MAX_FIELD)}
                    for label, value in pairs
                ],
            }
        )
    if event.reason and event.type not in QUIET_REASONS:
        if event.type == "APPLICATION_OUT_OF_SYNC":  # a unified diff: keep its lines as they are
            text = f"*What differs*\n```{_cut(escape(event.reason), MAX_TEXT - 30)}```"
        else:
            text = _cut(f"*Reason*\n{escape(event.reason)}", MAX_TEXT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    stamp = int(event.occurred_at.timestamp())
    when = f"<!date^{stamp}^{{date_short_pretty}} at {{time_secs}}|{event.occurred_at.isoformat()}>"
    piped = escape(event.piped.get("name", ""))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"Project {escape(event.project_id)} · piped {piped} · {when}"}
            ],
        }
    )
    if event.link:
        what = "deployment" if event.deployment else "application" if event.application else "piped"
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": BUTTONS.get(event.type, f"Open the {what}")},
            "url": event.link,
        }
        if event.type == "DEPLOYMENT_WAIT_APPROVAL":
            button["style"] = "primary"
        blocks.append({"type": "actions", "elements": [button]})
    fallback = f"{event.summary} {mentions}".strip()
    return {
        "text": fallback,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(title, MAX_TEXT)}}],
        "attachments": [{"color": color, "fallback": event.summary, "blocks": blocks}],
    }


def _api_check(response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return "the Slack API answered something that is not JSON"
    if answer.get("ok"):
        return ""
    error = str(answer.get("error") or "unknown error")
    return f"retry:Slack API: {error}" if error in RETRIED_API_ERRORS else f"Slack API: {error}"


def send(receiver, event: Event, *, timeout: float, api_url: str, users=(), groups=()) -> Attempt:
    """Post the message through the hook URL, or chat.postMessage with the receiver's token."""
    message = payload(
        event,
        users=[*users, *receiver.mentioned_accounts],
        groups=[*groups, *receiver.mentioned_groups],
    )
    if receiver.hook_url:
        return post(
            receiver.hook_url, json.dumps(message).encode(), {"Content-Type": "application/json"}, timeout
        )
    try:
        token = receiver.token()
    except OSError as exc:  # oauthTokenFile unreadable
        return Attempt("FAILED", error=str(exc))
    body = json.dumps({"channel": receiver.channel_id, **message}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
    return post(f"{api_url}/chat.postMessage", body, headers, timeout, check=_api_check)
