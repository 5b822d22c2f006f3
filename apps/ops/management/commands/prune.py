"""`manage.py prune [--dry-run] [--json] [--batch-size N]`: apply the retention rules once."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.ops.housekeeping import prune
from apps.projects.management.output import domain_errors_as_command_errors


class Command(BaseCommand):
    help = (
        "Delete stage logs, old deployments' stages and metadata, handled commands and audit rows past "
        "their retention (PIPEPORTAL_RETENTION_* settings), and expired sessions, in small batches. The "
        "newest deployments of every application are always kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        parser.add_argument(
            "--batch-size", type=int, help="rows per delete (default PIPEPORTAL_RETENTION_BATCH_SIZE)"
        )

    def handle(self, *args, **options):
        dry_run = options["dry_run"]
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        with domain_errors_as_command_errors():
            summary = prune(dry_run=dry_run, batch_size=batch_size).as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(summary, sort_keys=True))
            return
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb}: {summary['stage_logs']} stage log blocks, {summary['stages']} stages "
            f"(details of {summary['deployments_details_pruned']} deployments), {summary['commands']} commands, "
            f"{summary['audit_events']} audit rows, {summary['sessions']} expired sessions; the newest "
            f"{summary['keep_deployments']} deployments of every application were kept"
        )
