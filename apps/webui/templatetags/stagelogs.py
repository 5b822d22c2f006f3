"""Stage log lines as HTML in one pass: a page shows up to thousands of them, and the live tail appends some."""

from datetime import UTC

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()


def log_cursor(block) -> str:
    """Where a block sits in its stage's log, as the tail poll sends it back: `<retried_count>.<index>`."""
    return f"{block.retried_count}.{block.index}"


@register.simple_tag
def log_lines(blocks, after_run: int | None = None):
    """One `<div class="line">` per block, oldest first, with a divider where a new run of the stage begins.

    `after_run` is the run (retried_count) of the line already shown before these, for an appended tail.
    """
    parts = []
    run = after_run
    for block in blocks:
        if run is not None and block.retried_count != run:
            parts.append(
                format_html(
                    '<div class="line run-divider">Run {} of this stage</div>', block.retried_count + 1
                )
            )
        run = block.retried_count
        at = block.created_at.astimezone(UTC)
        parts.append(
            format_html(
                '<div class="line sev-{}" data-at="{}"><time datetime="{}" title="{}">{}</time> {}</div>',
                block.severity.lower(),
                log_cursor(block),
                at.isoformat(),
                at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                at.strftime("%H:%M:%S"),
                block.log,
            )
        )
    return format_html_join("", "{}", ((part,) for part in parts))
