"""`make demo` as a new user runs it: `DEBUG=true manage.py demo` on embedded defaults (SQLite, no broker),
the first deployment in the portal, the README's canary release approved through the portal, then Ctrl-C
stops everything the demo started; closing the demo's terminal does too."""

import contextlib
import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.components import free_port, wait_for_port
from tests.ops.conftest import ROOT, Started, checkout_env

# The demo runs its own moto server, control plane and piped: not alongside the other heavy e2e tests.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("piped-e2e")]

DEPLOY_TIMEOUT = 120
STOP_TIMEOUT = 60
ROW = re.compile(
    r'<tr>\s*<td class="stack-first"><a class="plain" href="/deployments/(?P<id>[0-9a-f-]{36})/">'
    r'<span class="badge tone-[\w-]+"[^>]*><span class="dot" aria-hidden="true"></span>(?P<label>[^<]+)</span>'
    r"(?P<rest>.*?)</tr>",
    re.S,
)
VERSION = re.compile(r'<code class="version"[^>]*>([^<]+)</code>')
ENDED = ("Success", "Failure", "Cancelled")
# The deployment page's status badge.
BIG_BADGE = re.compile(
    r'<span class="badge big tone-[\w-]+"><span class="dot" aria-hidden="true"></span>([^<]+)</span>'
)
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def demo_env(tmp_path: Path) -> dict[str, str]:
    """What a new user has: DEBUG=true and nothing else of PipePortal's (no database, broker or piped settings).
    Only the var folder is the test's own, so that the checkout's var/ is never touched."""
    env = checkout_env(tmp_path, DEBUG="true")
    for key in ("SECRET_KEY", "PIPEPORTAL_KEY_HASH_SECRET", "SQLITE_PATH", "STATIC_ROOT"):
        env.pop(key)
    return {k: v for k, v in env.items() if not k.startswith(("PIPED_", "AWS_"))}


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell it from a later process that reuses the number); None once it
    has ended (a zombie has ended: it only waits for its parent, or init, to collect its status)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def descendants(pid: int) -> dict[int, str]:
    """{pid: start time} of every process below `pid`."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        start = process_start(child)
        if start is not None:
            found[child] = start
        todo.extend(parents.get(child, []))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(what: str, check, timeout: float, demo: Started, interval: float = 0.5):
    """check() until it answers something truthy; fails with the demo's output when it does not in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if demo.proc.poll() is not None:
            raise AssertionError(
                f"the demo exited ({demo.proc.returncode}) while waiting for {what}:\n{demo.output}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last seen {value!r}\n{demo.output}")
        time.sleep(interval)


class Portal:
    """The portal as a person with a browser uses it: log in, read the deployments list, press Approve."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def login(self, username: str, password: str) -> None:
        page = self.session.get(f"{self.url}/login/demo/", timeout=10)
        assert page.status_code == 200, page.text
        response = self.session.post(
            f"{self.url}/login/demo/",
            data={
                "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
                "username": username,
                "password": password,
                "next": "/",
            },
            timeout=10,
        )
        assert response.status_code == 200 and "/login/" not in response.url, (response.url, response.text)

    def deployments(self) -> list[dict]:
        """The deployments list, newest first: [{id, label, versions}]."""
        page = self.session.get(f"{self.url}/deployments/", timeout=10)
        assert page.status_code == 200 and page.url == f"{self.url}/deployments/", page.url
        return [
            {"id": m["id"], "label": m["label"].strip(), "versions": VERSION.findall(m["rest"])}
            for m in ROW.finditer(page.text)
        ]

    def deployment_page(self, deployment_id: str) -> str:
        page = self.session.get(f"{self.url}/deployments/{deployment_id}/", timeout=10)
        assert page.status_code == 200, page.text
        return page.text

    def deployment_status(self, deployment_id: str) -> str:
        return BIG_BADGE.search(self.deployment_page(deployment_id)).group(1).strip()

    def approve(self, deployment_id: str) -> requests.Response:
        page = self.deployment_page(deployment_id)
        action = re.search(
            rf'<form method="post" action="(/deployments/{deployment_id}/stages/[^/"]+/approve/)">', page
        )
        assert action, f"no Approve form on the deployment page:\n{page}"
        # The form's own token: the one right after its opening tag.
        token = CSRF.search(page, action.end()).group(1)
        return self.session.post(
            f"{self.url}{action.group(1)}", data={"csrfmiddlewaretoken": token}, timeout=10
        )


def git(workdir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=workdir, capture_output=True, text=True, check=True, timeout=60
    ).stdout


class Reaper:
    """The processes a test started or saw: whatever of them is still there at the end is killed."""

    def __init__(self):
        self.leaders: list[int] = []
        self.seen: dict[int, str] = {}

    def finish(self) -> None:
        for leader in self.leaders:
            self.seen.update(descendants(leader))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leader, signal.SIGKILL)
        # The demo's children run in process groups of their own.
        for pid, start in self.seen.items():
            if process_start(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def reaper():
    reaper = Reaper()
    yield reaper
    reaper.finish()


def demo_args(port: int) -> list[str]:
    return [sys.executable, "manage.py", "demo", "--port", str(port)]


@pytest.fixture
def demo_run(tmp_path, reaper):
    """The demo started as a terminal runs a foreground job: leading its own process group."""
    env = demo_env(tmp_path)
    port = free_port()
    # setsid: the test's Ctrl-C then goes to the demo's process group as a terminal's does, and the cleanup
    # can kill that group without touching pytest.
    demo = Started(["setsid", *demo_args(port)], env)
    reaper.leaders.append(demo.proc.pid)
    yield demo, port, Path(env["PIPEPORTAL_VAR_DIR"]) / "demo", reaper.seen
    if demo.proc.poll() is None:
        reaper.finish()
        demo.proc.wait(10)


def demo_children(demo_pid: int) -> dict[int, str] | None:
    """{pid: start time} below the demo once its moto server, control plane and piped all run."""
    found = descendants(demo_pid)
    lines = [command_line(pid) for pid in found]
    named = [
        [line for line in lines if marker in line] for marker in ("moto_server", " runserver ", " piped ")
    ]
    return found if all(len(matches) == 1 for matches in named) else None


def moto_port_of(children: dict[int, str]) -> int:
    line = next(command_line(pid) for pid in children if "moto_server" in command_line(pid))
    return int(line.split(" -p ", 1)[1].split()[0])


def assert_all_stopped(children: dict[int, str], ports: list[int], workdir: Path) -> None:
    """No process the demo started remains, nothing listens on their ports, and the piped was stopped before
    the control plane, so that it could still say it stopped cleanly."""
    left = {pid: command_line(pid) for pid, start in children.items() if process_start(pid) == start}
    assert not left, left
    assert not [port for port in ports if listening(port)]
    database = workdir.parent / "pipeportal.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        stopped = db.execute("SELECT stopped_at FROM pipeds_piped WHERE name = 'demo-piped'").fetchall()
    assert len(stopped) == 1 and stopped[0][0] is not None, (
        stopped,
        (workdir / "logs" / "piped.log").read_text(),
    )


def test_make_demo_deploys_takes_a_canary_through_approval_and_stops_on_ctrl_c(demo_run, tmp_path):
    demo, port, workdir, seen = demo_run
    url = f"http://127.0.0.1:{port}"

    # The portal answers and the banner tells the user how to log in.
    demo.wait_for(r"Press Ctrl-C to stop everything", timeout=DEPLOY_TIMEOUT)
    wait_for_port(port, timeout=10, proc=demo.proc)
    assert f"PipePortal is running:   {url}/login/demo/" in demo.output
    banner_user = demo.wait_for(r"Static admin login:").split()[-1]
    banner_password = demo.wait_for(r"Static admin password:").split()[-1]
    saved = json.loads((workdir / "demo-credentials.json").read_text())
    assert (saved["admin"], saved["password"]) == (banner_user, banner_password)
    # Its files went to the test's own var folder.
    assert workdir.is_relative_to(tmp_path) and (workdir / "logs" / "control-plane.log").exists()

    # Everything the demo started, recorded before it is asked to stop.
    children = wait_until(
        "the moto server, control plane and piped", lambda: demo_children(demo.proc.pid), 30, demo
    )
    seen.update(children)
    moto_port = moto_port_of(children)
    assert moto_port != port and listening(moto_port)

    portal = Portal(url)
    portal.login(banner_user, banner_password)

    # The first deployment (a quick sync of v1) reaches SUCCESS in the portal.
    first = wait_until(
        "the first deployment's end",
        lambda: [d for d in portal.deployments() if d["label"] in ENDED],
        DEPLOY_TIMEOUT,
        demo,
    )
    assert [(d["label"], d["versions"]) for d in first] == [("Success", ["v1"])], (first, demo.output)
    assert portal.deployment_status(first[0]["id"]) == "Success"
    demo.wait_for(rf"deployment {first[0]['id'][:8]} of hogehoge at \w+: SUCCESS", timeout=10)

    # The README's canary release: a new image tag, committed and pushed in the demo's working copy.
    manifests = workdir / "manifests-work"
    subprocess.run(
        ["sed", "-i", "s/hogehoge:v1/hogehoge:v2/", "apps/hello/taskdef.yaml"], cwd=manifests, check=True
    )
    git(manifests, "commit", "-am", "hogehoge v2")
    git(manifests, "push")
    pushed = git(manifests, "rev-parse", "--short", "HEAD").strip()

    def waiting_second():
        rows = portal.deployments()
        return [d for d in rows if d["id"] != first[0]["id"] and d["label"] == "Waiting for approval"]

    (second,) = wait_until("the v2 deployment waiting for approval", waiting_second, DEPLOY_TIMEOUT, demo)
    assert second["versions"] == ["v2"], second
    assert portal.deployment_status(second["id"]) == "Waiting for approval"
    assert pushed in portal.deployment_page(second["id"])

    approved = portal.approve(second["id"])
    assert approved.status_code == 200 and approved.url == f"{url}/deployments/{second['id']}/", approved.url
    assert f"Approved as {banner_user}" in approved.text

    def second_done():
        rows = {d["id"]: d for d in portal.deployments()}
        label = rows[second["id"]]["label"]
        return label if label in ENDED else None

    assert wait_until("the v2 deployment's end", second_done, DEPLOY_TIMEOUT, demo) == "Success", demo.output
    assert [(d["label"], d["versions"]) for d in portal.deployments()] == [
        ("Success", ["v2"]),
        ("Success", ["v1"]),
    ]
    assert portal.deployment_status(second["id"]) == "Success"

    # Ctrl-C: the terminal sends SIGINT to the foreground job's process group.
    children = {**children, **descendants(demo.proc.pid)}
    seen.update(children)
    os.killpg(demo.proc.pid, signal.SIGINT)
    try:
        code = demo.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the demo did not stop within {STOP_TIMEOUT}s of Ctrl-C:\n{demo.output}"
        ) from None
    demo.wait_for(r"^Stopped\.$", timeout=5)
    assert "Traceback" not in demo.output and "stopped unexpectedly" not in demo.output, demo.output
    assert code == 0, demo.output
    assert_all_stopped(children, [port, moto_port], workdir)


def test_closing_the_demos_terminal_stops_everything_it_started(tmp_path, reaper):
    """The demo on a terminal of its own (a pty): closing it hangs the demo up, writing to it fails from then on,
    and the demo still stops its children, the piped first."""
    env = demo_env(tmp_path)
    port = free_port()
    workdir = Path(env["PIPEPORTAL_VAR_DIR"]) / "demo"
    master, slave = pty.openpty()
    try:
        # setsid -c: a new session whose controlling terminal is the pty, as a terminal window's shell has.
        demo = subprocess.Popen(
            ["setsid", "-c", *demo_args(port)], cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave
        )
    finally:
        os.close(slave)
    reaper.leaders.append(demo.pid)
    output = bytearray()

    def read(seconds: float) -> None:
        """What the demo wrote on its terminal (read all along, so that it never blocks writing)."""
        ready, _, _ = select.select([master], [], [], seconds)
        if ready:
            output.extend(os.read(master, 65536))

    def read_until(what: str, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert demo.poll() is None, (
                f"the demo exited ({demo.returncode}):\n{output.decode(errors='replace')}"
            )
            assert time.monotonic() < deadline, (
                f"{what}: not within {timeout}s:\n{output.decode(errors='replace')}"
            )
            read(0.2)

    try:
        read_until("the banner", lambda: b"Press Ctrl-C to stop everything" in output, DEPLOY_TIMEOUT)
        read_until("the moto server, control plane and piped", lambda: demo_children(demo.pid), 30)
        children = demo_children(demo.pid)
        reaper.seen.update(children)
        moto_port = moto_port_of(children)
        assert listening(port) and listening(moto_port)
        # A piped stopped while it still starts up reports nothing; a person closes the window later than that.
        piped_log = workdir / "logs" / "piped.log"
        read_until("the piped running", lambda: " running (" in piped_log.read_text(), 30)
    finally:
        os.close(master)  # the terminal window closes
    try:
        demo.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the demo did not stop within {STOP_TIMEOUT}s of its terminal closing"
        ) from None
    assert_all_stopped(children, [port, moto_port], workdir)


def test_the_demos_children_run_in_their_own_process_groups(tmp_path):
    """So that a terminal's Ctrl-C reaches the demo alone and it stops them in its order."""
    from apps.pipedagent.management.commands.demo import Children

    children = Children(tmp_path)
    process = children.start("sleeper", ["sleep", "60"], dict(os.environ))
    try:
        assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    finally:
        children.stop()
    assert process.returncode == -signal.SIGTERM
