"""Links in notifications: the portal's address (webAddress, else apiAddress) and commits on Git hosts."""

import pytest

from apps.notifications.events import commit_link, portal_url

SHA = "4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


@pytest.mark.parametrize(
    ("web_address", "api_url", "expected"),
    [
        ("https://portal.example.com/", "https://cp.internal:443/api/piped/v1", "https://portal.example.com"),
        ("portal.example.com", "https://cp.internal/api/piped/v1", "https://portal.example.com"),
        ("", "https://pipecd.example.com:443/api/piped/v1", "https://pipecd.example.com"),
        ("", "https://pipecd.example.com:8443/api/piped/v1", "https://pipecd.example.com:8443"),
        ("", "http://127.0.0.1:8000/api/piped/v1", "http://127.0.0.1:8000"),
        ("", "http://cp.local:80/api/piped/v1", "http://cp.local"),
        ("", "", ""),
    ],
)
def test_the_portal_is_the_web_address_else_the_control_planes_own(web_address, api_url, expected):
    assert portal_url(web_address, api_url) == expected


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("git@github.com:hoge/manifests.git", f"https://github.com/hoge/manifests/commit/{SHA}"),
        ("https://github.com/hoge/manifests", f"https://github.com/hoge/manifests/commit/{SHA}"),
        (
            "ssh://git@github.example.com:2222/org/repo.git",
            f"https://github.example.com/org/repo/commit/{SHA}",
        ),
        ("git@gitlab.com:group/sub/repo.git", f"https://gitlab.com/group/sub/repo/-/commit/{SHA}"),
        ("https://user@bitbucket.org/team/repo.git", f"https://bitbucket.org/team/repo/commits/{SHA}"),
        ("file:///tmp/manifests.git", ""),
        ("/srv/git/manifests.git", ""),
        ("", ""),
    ],
)
def test_commits_link_to_their_git_host(remote, expected):
    assert commit_link(remote, SHA) == expected
