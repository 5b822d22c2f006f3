"""Trigger rules (PipeCD's semantics) and the file patterns they use."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.pipedagent.filematch import PatternError, PatternMatcher
from apps.pipedagent.triggers import is_touched, on_commit, on_out_of_sync

# --- Patterns (Docker's matcher, as PipeCD uses it) -------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**", "file", True),
        ("**", "dir/file", True),
        ("dir/**", "dir/file", True),
        ("dir/**", "dir/dir2/file", True),
        ("**/dir2/*", "dir/dir2/file", True),
        ("**/dir2/**", "dir/dir2/dir3/file", True),
        ("**file", "dir/dir/file", True),
        ("**/file*.txt", "dir/dir/file.txt", True),
        ("**/**/*.txt2", "dir/dir/file.txt", False),
        ("**/*.txt", "file.txt", True),
        ("a/*.txt", "a/dir/file.txt", False),
        ("a/*.txt", "a/file.txt", True),
        ("a[b-d]e", "ace", True),
        ("a[b-d]e", "aae", False),
        ("a[^b-d]e", "aze", True),
        (".*", ".foo", True),
        (".*", "foo", False),
        ("abc.def", "abcdef", False),
        ("abc?def", "abcZdef", True),
        ("abc?def", "abc/def", False),
        ("**/foo/bar", "foo/bar", True),
        ("abc/**", "abc", False),
        ("+file", "+file", True),
        ("+file", "file", False),
        ("dir(1)/file", "dir1/file", False),
        ("a|b", "a", False),
        # A pattern naming a directory matches what is below it.
        ("docs", "docs/README.md", True),
        ("apps/web", "apps/web/taskdef.yaml", True),
        ("apps/web", "apps/webapp/taskdef.yaml", False),
    ],
)
def test_patterns_match_like_pipecd(pattern, path, expected):
    assert PatternMatcher([pattern]).matches(path) is expected


def test_an_exclusion_wins_whatever_its_position():
    assert PatternMatcher(["*.go", "!fileutils.go"]).matches("fileutils.go") is False
    assert PatternMatcher(["!fileutils.go", "*.go"]).matches("fileutils.go") is False
    assert PatternMatcher(["docs", "!docs/README.md"]).matches("docs/README.md") is False


@pytest.mark.parametrize("pattern", ["!", "[", "a[", "[^bc", "[-x]"])
def test_malformed_patterns_are_refused(pattern):
    with pytest.raises(PatternError):
        PatternMatcher([pattern])


# --- Touched or not -------------------------------------------------------------------------------------


def test_a_change_under_the_app_directory_touches_it():
    assert is_touched("apps/web", [], [], ["apps/web/taskdef.yaml"])
    assert not is_touched("apps/web", [], [], ["apps/webapp/taskdef.yaml", "README.md"])


def test_the_repository_root_as_app_directory_sees_everything():
    assert is_touched(".", [], [], ["README.md"])


def test_paths_add_files_outside_the_app_directory():
    assert is_touched("apps/web", ["shared/**"], [], ["shared/config/env.yaml"])
    assert not is_touched("apps/web", ["shared/**"], [], ["other/thing.yaml"])


def test_one_ignored_file_means_not_touched_as_in_pipecd():
    # PipeCD: if any changed file matches `ignores`, the application is not touched at all.
    files = ["apps/web/taskdef.yaml", "apps/web/README.md"]
    assert not is_touched("apps/web", [], ["apps/web/*.md"], files)
    assert is_touched("apps/web", [], ["apps/web/*.md"], ["apps/web/taskdef.yaml"])


def test_ignores_are_checked_before_paths():
    assert not is_touched("apps/web", ["shared/**"], ["shared/secret/*"], ["shared/secret/x", "shared/a"])


# --- onCommit -------------------------------------------------------------------------------------------


def _on_commit(last, head="h2", files=(), disabled=False, paths=(), ignores=()):
    calls = []

    def changed(old, new):
        calls.append((old, new))
        return list(files)

    decision = on_commit(
        disabled=disabled,
        app_dir="apps/web",
        paths=list(paths),
        ignores=list(ignores),
        last_triggered_commit=last,
        head=head,
        changed_files=changed,
    )
    return decision, calls


def test_a_new_application_is_deployed_at_its_head():
    decision, calls = _on_commit(None)
    assert decision.trigger and "no deployment" in decision.reason
    assert calls == []


def test_nothing_new_means_no_deployment_and_no_diff():
    decision, calls = _on_commit("h2", head="h2")
    assert not decision.trigger
    assert calls == []


def test_a_touching_commit_triggers_with_the_diff_from_the_last_triggered_commit():
    decision, calls = _on_commit("h1", files=["apps/web/taskdef.yaml"])
    assert decision.trigger
    assert calls == [("h1", "h2")]


def test_an_unrelated_commit_does_not_trigger():
    decision, _ = _on_commit("h1", files=["apps/other/taskdef.yaml"])
    assert not decision.trigger


def test_on_commit_disabled_never_triggers_even_the_first_time():
    assert not _on_commit(None, disabled=True)[0].trigger
    assert not _on_commit("h1", files=["apps/web/taskdef.yaml"], disabled=True)[0].trigger


def test_a_vanished_last_commit_deploys_the_head():
    def broken(old, new):
        raise RuntimeError("bad object h1")

    decision = on_commit(
        disabled=False,
        app_dir="apps/web",
        paths=[],
        ignores=[],
        last_triggered_commit="h1",
        head="h2",
        changed_files=broken,
    )
    assert decision.trigger and "bad object" in decision.reason


# --- onOutOfSync ----------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _out_of_sync(status="OUT_OF_SYNC", disabled=False, recent=None):
    return on_out_of_sync(
        disabled=disabled,
        min_window=timedelta(minutes=5),
        sync_status=status,
        most_recent_deployment=recent,
        now=NOW,
    )


def test_out_of_sync_is_off_by_default_config():
    assert not _out_of_sync(disabled=True).trigger


def test_out_of_sync_waits_for_min_window_after_the_last_deployment():
    recent = {"completed_at": (NOW - timedelta(minutes=2)).isoformat()}
    assert not _out_of_sync(recent=recent).trigger
    old = {"completed_at": (NOW - timedelta(minutes=6)).isoformat()}
    assert _out_of_sync(recent=old).trigger


def test_out_of_sync_never_interrupts_a_running_deployment():
    assert not _out_of_sync(recent={"completed_at": None}).trigger


def test_synced_applications_are_left_alone():
    assert not _out_of_sync(status="SYNCED").trigger
