"""The demo's manifests repository: a local bare Git repository holding the seed's ECS application.

Used by `manage.py demo` and the end-to-end tests (GitPython; author and committer are given explicitly
so the machine's own Git identity does not matter).
"""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import git

ASSETS = Path(__file__).resolve().parent / "demo_assets"
AUTHOR = git.Actor("Demo Developer", "dev@example.com")


def render_app(values: dict[str, str], *, image_tag: str = "v1", app: str = "hello") -> dict[str, str]:
    """The app's files with the `${...}` placeholders filled in: {file name: text}."""
    mapping = {**values, "IMAGE_TAG": image_tag}
    return {
        path.name: string.Template(path.read_text()).substitute(mapping)
        for path in sorted((ASSETS / app).iterdir())
        if path.is_file()
    }


class ManifestsRepo:
    """A bare repository (the remote the piped fetches) and a working clone to commit and push from."""

    def __init__(self, root: Path, branch: str = "main"):
        self.root = root
        self.branch = branch
        self.bare_path = root / "manifests.git"
        self.work_path = root / "manifests-work"

    @property
    def remote(self) -> str:
        return f"file://{self.bare_path}"

    def create(self, *, reset: bool = False) -> ManifestsRepo:
        if reset:
            shutil.rmtree(self.bare_path, ignore_errors=True)
            shutil.rmtree(self.work_path, ignore_errors=True)
        if not self.bare_path.exists():
            git.Repo.init(self.bare_path, bare=True, initial_branch=self.branch)
        if not self.work_path.exists():
            repo = git.Repo.init(self.work_path, initial_branch=self.branch)
            with repo.config_writer() as config:
                config.set_value("user", "name", AUTHOR.name)
                config.set_value("user", "email", AUTHOR.email)
            repo.create_remote("origin", self.remote)
        return self

    @property
    def work(self) -> git.Repo:
        return git.Repo(self.work_path)

    def write(self, files: dict[str, str], under: str = "") -> None:
        for name, text in files.items():
            target = self.work_path / under / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def remove(self, path: str) -> None:
        target = self.work_path / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def commit_and_push(self, message: str) -> str:
        repo = self.work
        repo.git.add("--all")
        commit = repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        repo.git.push("origin", f"HEAD:refs/heads/{self.branch}")
        return commit.hexsha

    def head(self) -> str:
        return git.Repo(self.bare_path).commit(self.branch).hexsha
