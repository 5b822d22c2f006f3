"""Git behind a small adapter (GitPython): one bare clone per repository, fetched incrementally and shared
by every application of that repository; files are read straight from the object store at a commit.

Credentials never reach the clone's config or the process list: an SSH key goes to a 0600 temporary file
named in GIT_SSH_COMMAND, a password reaches git through a GIT_ASKPASS helper reading the environment of
that one git process. Several processes on one machine may share the work directory: fetches take a file
lock per repository.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import git

from . import metrics

logger = logging.getLogger(__name__)

_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


class GitError(Exception):
    """A git operation failed; the message is safe to show (credentials removed)."""


def scrub(text: str) -> str:
    return _CREDENTIALS_IN_URL.sub(r"\1***@", text or "")


def _git_error(exc: Exception, what: str) -> GitError:
    if isinstance(exc, git.GitCommandError):
        detail = (exc.stderr or exc.stdout or "").strip() or str(exc)
        detail = detail.removeprefix("stderr:").strip().strip("'").strip()
        if exc.status in (-9, "-9") or "timed out" in detail.lower():
            detail = f"timed out ({detail})" if detail else "timed out"
        return GitError(scrub(f"{what}: {detail}"))
    return GitError(scrub(f"{what}: {exc}"))


@dataclass
class GitAuth:
    """How to reach remotes: an SSH private key, or a user name and password/token for HTTPS."""

    ssh_key: bytes | None = None
    username: str = ""
    password: str = ""


@dataclass
class CommitInfo:
    hash: str
    message: str
    author: str
    timestamp: datetime

    def as_api(self, branch: str = "", url: str = "") -> dict:
        return {
            "hash": self.hash,
            "message": self.message,
            "author": self.author,
            "branch": branch,
            "url": url,
            "timestamp": self.timestamp.isoformat(),
        }


class GitEnvironment:
    """The environment given to every git process of this piped (SSH key file, askpass helper)."""

    def __init__(self, work_dir: Path, auth: GitAuth):
        self.env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "piped",
            "GIT_AUTHOR_EMAIL": "piped@localhost",
        }
        self._files: list[Path] = []
        secrets_dir = work_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        if auth.ssh_key:
            fd, key_path = tempfile.mkstemp(prefix="ssh-key-", dir=secrets_dir)
            with os.fdopen(fd, "wb") as handle:
                key = auth.ssh_key if auth.ssh_key.endswith(b"\n") else auth.ssh_key + b"\n"
                handle.write(key)
            os.chmod(key_path, 0o600)
            self._files.append(Path(key_path))
            known_hosts = secrets_dir / "known_hosts"
            self.env["GIT_SSH_COMMAND"] = (
                f"ssh -i {key_path} -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts}"
            )
        if auth.username or auth.password:
            fd, script = tempfile.mkstemp(prefix="askpass-", suffix=".sh", dir=secrets_dir)
            with os.fdopen(fd, "w") as handle:
                handle.write(
                    "#!/bin/sh\n"
                    'case "$1" in\n'
                    '  Username*) printf "%s\\n" "$PIPED_GIT_USERNAME" ;;\n'
                    '  *) printf "%s\\n" "$PIPED_GIT_PASSWORD" ;;\n'
                    "esac\n"
                )
            os.chmod(script, stat.S_IRWXU)
            self._files.append(Path(script))
            self.env.update(
                {
                    "GIT_ASKPASS": script,
                    "PIPED_GIT_USERNAME": auth.username,
                    "PIPED_GIT_PASSWORD": auth.password,
                }
            )
        atexit.register(self.cleanup)

    def cleanup(self) -> None:
        for path in self._files:
            path.unlink(missing_ok=True)
        self._files = []


class LocalRepo:
    """A bare clone of one repository's branch under `<work_dir>/repos/<repo_id>`."""

    def __init__(
        self, repo_id: str, remote: str, branch: str, work_dir: Path, env: GitEnvironment, timeout: float
    ):
        self.repo_id = repo_id
        self.remote = remote
        self.branch = branch
        self.path = work_dir / "repos" / re.sub(r"[^A-Za-z0-9._-]", "_", repo_id)
        self.exports = work_dir / "sources" / re.sub(r"[^A-Za-z0-9._-]", "_", repo_id)
        self.env = env
        self.timeout = timeout
        self._lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._git: git.Git | None = None
        # True until the first successful fetch into a clone this process created (metrics: a `clone`).
        self._cloning = False

    @property
    def ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    def _cmd(self) -> git.Git:
        if self._git is None:
            with self._init_lock:
                if self._git is None:
                    self._git = self._ensure_repo()
        return self._git

    def _ensure_repo(self) -> git.Git:
        """Create the bare clone on first use and point it at the configured remote and branch."""
        with _file_lock(self.path.with_suffix(".lock")):
            if not (self.path / "HEAD").exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                git.Repo.init(self.path, bare=True)
                self._cloning = True
            repo = git.Repo(self.path)
            with repo.config_writer() as config:
                config.set_value('remote "origin"', "url", self.remote)
                config.set_value('remote "origin"', "fetch", f"+refs/heads/{self.branch}:{self.ref}")
            return repo.git

    def fetch(self) -> str:
        """Fetch the branch (incrementally) and answer its head commit."""
        command = self._cmd()
        with metrics.git_fetch(self.repo_id, "clone" if self._cloning else "fetch"):
            with self._lock, _file_lock(self.path.with_suffix(".lock")):
                try:
                    command.fetch(
                        "--prune",
                        "--no-tags",
                        "origin",
                        f"+refs/heads/{self.branch}:{self.ref}",
                        env=self.env.env,
                        kill_after_timeout=self.timeout,
                    )
                except (git.GitCommandError, OSError) as exc:
                    raise _git_error(
                        exc, f"fetching {scrub(self.remote)} (branch {self.branch}) failed"
                    ) from None
            head = self.head()
            if head is None:
                raise GitError(f"branch {self.branch} was not found in {scrub(self.remote)}")
        self._cloning = False
        return head

    def head(self) -> str | None:
        try:
            return self._cmd().rev_parse("--verify", "--quiet", self.ref).strip() or None
        except git.GitCommandError:
            return None

    def has_commit(self, sha: str) -> bool:
        try:
            self._cmd().cat_file("-e", f"{sha}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def ensure_commit(self, sha: str) -> None:
        """Fetch when a worker needs a commit its clone has not seen yet."""
        if not self.has_commit(sha):
            self.fetch()
            if not self.has_commit(sha):
                raise GitError(f"commit {sha} is not in branch {self.branch} of {scrub(self.remote)}")

    def commit_info(self, sha: str) -> CommitInfo:
        try:
            raw = self._cmd().log("-1", "--format=%H%x00%an%x00%ct%x00%B", sha, "--")
        except git.GitCommandError as exc:
            raise _git_error(exc, f"reading commit {sha}") from None
        commit_hash, author, stamp, message = raw.split("\x00", 3)
        return CommitInfo(
            hash=commit_hash.strip(),
            author=author,
            timestamp=datetime.fromtimestamp(int(stamp), tz=UTC),
            message=message.strip(),
        )

    def read_file(self, sha: str, path: str) -> str | None:
        """The text of `path` at `sha`, or None when the file does not exist there."""
        try:
            return self._cmd().show(f"{sha}:{path}", strip_newline_in_stdout=False)
        except git.GitCommandError:
            return None

    def changed_files(self, old: str, new: str) -> list[str]:
        try:
            out = self._cmd().diff("--name-only", "--no-renames", old, new, "--")
        except git.GitCommandError as exc:
            raise _git_error(exc, f"listing the files changed between {old[:7]} and {new[:7]}") from None
        return [line for line in out.splitlines() if line]

    def list_files(self, sha: str) -> list[str]:
        try:
            out = self._cmd().ls_tree("-r", "--name-only", sha)
        except git.GitCommandError as exc:
            raise _git_error(exc, f"listing the files of {sha[:7]}") from None
        return [line for line in out.splitlines() if line]

    def export(self, sha: str, subdir: str) -> Path:
        """The directory `subdir` as it is at `sha`, on disk (cached; written once, atomically)."""
        subdir = subdir.strip("/") or "."
        target = self.exports / sha / ("_root" if subdir == "." else subdir)
        if (target / ".piped-export-complete").exists():
            return target
        buffer = io.BytesIO()
        repo = git.Repo(self.path)
        try:
            if subdir == ".":
                repo.archive(buffer, sha, format="tar")
            else:
                repo.archive(buffer, sha, format="tar", path=subdir)
        except git.GitCommandError as exc:
            raise _git_error(exc, f"reading {subdir} at {sha[:7]}") from None
        staging = self.exports / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as archive:
            archive.extractall(staging, filter="data")
        source = staging if subdir == "." else staging / subdir
        target.parent.mkdir(parents=True, exist_ok=True)
        (source / ".piped-export-complete").touch()
        # Someone else may have exported the same directory meanwhile: theirs is as good as ours.
        with contextlib.suppress(OSError):
            source.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        return target

    def prune_exports(self, older_than: float = 24 * 3600) -> None:
        if not self.exports.exists():
            return
        cutoff = time.time() - older_than
        for entry in self.exports.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue


class _file_lock:
    """An exclusive flock on `path` (for processes sharing a work directory)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Repositories:
    """Every repository of the piped config, by repo id."""

    def __init__(self, repositories: list[dict], work_dir: Path, auth: GitAuth, timeout: float):
        self.env = GitEnvironment(work_dir, auth)
        self.repos = {
            r["repo_id"]: LocalRepo(r["repo_id"], r["remote"], r["branch"], work_dir, self.env, timeout)
            for r in repositories
        }

    def get(self, repo_id: str) -> LocalRepo:
        try:
            return self.repos[repo_id]
        except KeyError:
            raise GitError(f"repository {repo_id!r} is not in the piped config") from None

    def __iter__(self):
        return iter(self.repos.values())


def auth_from_spec(spec) -> GitAuth:
    """GitAuth from a PipedSpec's `git:` block (SSH key, passwordAuth or personalAccessToken)."""
    git_spec = spec.git
    key = git_spec.ssh_key()
    if git_spec.password_auth.user_name:
        return GitAuth(
            ssh_key=key, username=git_spec.password_auth.user_name, password=git_spec.password_auth.password
        )
    token = git_spec.personal_access_token
    if token.user_name or token.user_token:
        return GitAuth(ssh_key=key, username=token.user_name, password=token.user_token)
    return GitAuth(ssh_key=key)
