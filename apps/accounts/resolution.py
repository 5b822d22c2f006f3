"""Working out a person's role in a project from the groups their identity provider vouches for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apps.projects.choices import ROLE_RANK, Role
from apps.projects.models import Project, UserGroup


@dataclass(frozen=True)
class Resolution:
    role: str | None  # None: refused
    matched: tuple[str, ...]  # the groups the role came from
    received: tuple[str, ...]  # every group the identity provider sent
    stray: bool = False  # no group matched; Viewer because the project lets strays in


def _as_strings(value: Any) -> list[str]:
    """A claim may be a list, a single string, or (Keycloak, Entra roles) a list of objects with a name."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Mapping):
        name = value.get("name") or value.get("value") or value.get("displayName")
        return [str(name)] if name else []
    if isinstance(value, Iterable):
        out: list[str] = []
        for item in value:
            out.extend(_as_strings(item))
        return out
    return [str(value)]


def _claim(claims: Mapping, key: str) -> Any:
    """`key` as is first (Cognito's `cognito:groups`), then as a dotted path (`realm_access.roles`)."""
    if key in claims:
        return claims[key]
    node: Any = claims
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _unique(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        value = value.strip()
        if value:
            seen.setdefault(value, None)
    return list(seen)


def groups_from_claims(claim_sets: Iterable[Mapping | None], keys: str | Iterable[str]) -> list[str]:
    """The groups under `keys` in the ID token and userinfo together: Cognito sends them only in the former."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    values: list[str] = []
    for claims in claim_sets:
        if claims:
            for key in keys:
                values.extend(_as_strings(_claim(claims, key)))
    return _unique(values)


def groups_from_saml(attributes: Mapping[str, list], names: Iterable[str]) -> list[str]:
    values: list[str] = []
    for name in names:
        values.extend(_as_strings(attributes.get(name)))
    return _unique(values)


def groups_from_github_teams(teams: Iterable[Mapping], org: str = "") -> list[str]:
    """GitHub's /user/teams answer as `org/team` slugs; only `org`'s teams when one is configured."""
    values = []
    for team in teams:
        login = (team.get("organization") or {}).get("login", "")
        slug = team.get("slug", "")
        if not login or not slug:
            continue
        if org and login.lower() != org.lower():
            continue
        values.append(f"{login}/{slug}")
    return _unique(values)


def resolve_role(project: Project, groups: Iterable[str]) -> Resolution:
    """The highest role among the project's user groups that match; literal role names count too."""
    received = tuple(_unique(groups))
    # Compared here, exactly, rather than in SQL: MariaDB's collation would ignore case, SQLite would not.
    by_group = dict(UserGroup.objects.filter(project=project).values_list("sso_group", "role"))
    mapped = {group: by_group[group] for group in received if group in by_group}
    for group in received:
        if group in Role.values:
            mapped.setdefault(group, group)
    if mapped:
        best = max(mapped.values(), key=lambda role: ROLE_RANK[role])
        matched = tuple(g for g in received if mapped.get(g) == best)
        return Resolution(role=best, matched=matched, received=received)
    if project.allow_stray_as_viewer:
        return Resolution(role=Role.VIEWER, matched=(), received=received, stray=True)
    return Resolution(role=None, matched=(), received=received)
