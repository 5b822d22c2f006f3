"""`manage.py validateconfig PATH... [--strict] [--json]`: check PipeCD config files before they are used.

Exit status: 0 when no errors, 1 when errors were found, 2 for usage problems. Needs no database.
"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.pipelineconfig.validate import check_paths, scan_folder


class Command(BaseCommand):
    help = (
        "Check app configs (with the service and task definition files they point to), piped configs and "
        "control-plane configs. A folder means every *.pipecd.yaml below it."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="A config file, or a folder to search.")
        parser.add_argument("--strict", action="store_true", help="Treat warnings as errors.")
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print one JSON list of {file, line, col, path, severity, message} instead of text.",
        )

    def handle(self, *args, **options):
        paths = [Path(p) for p in options["paths"]]
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path}: no such file or folder", returncode=2)
            if path.is_dir() and scan_folder(path) == ([], []):
                raise CommandError(f"{path}: no *.pipecd.yaml file below this folder", returncode=2)
        report = check_paths(paths, strict=options["strict"])
        if options["json"]:
            self.stdout.write(json.dumps([p.as_dict() for p in report.problems], ensure_ascii=False))
        else:
            for problem in report.problems:
                location = f"{problem.file}:{problem.line}:{problem.col}" if problem.line else problem.file
                path = f" {problem.path}:" if problem.path else ""
                self.stdout.write(f"{location}: {problem.severity}:{path} {problem.message}")
            files = len(report.files)
            self.stdout.write(
                f"{files} file{'s' if files != 1 else ''} checked: {len(report.errors)} error(s), "
                f"{len(report.warnings)} warning(s)"
            )
        if report.errors:
            sys.exit(1)
