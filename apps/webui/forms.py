"""Portal forms: they parse and check the shape of input; the services decide what is allowed."""

from django import forms

from apps.applications.choices import DEFAULT_CONFIG_FILENAME, ApplicationKind, SyncStatus
from apps.core.errors import DomainError, InvalidInput
from apps.deployments.choices import DeploymentStatus, SyncStrategy
from apps.projects.choices import APIKeyRole, Role

from . import queries
from .pipeds import Suggestion

MAX_LABELS_TEXT = 5000


def apply_domain_error(form: forms.Form, exc: DomainError) -> None:
    """Show a service's refusal on the field it names (or on the form as a whole)."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


def parse_labels_text(text: str) -> dict[str, str]:
    """`key: value` per line (or comma separated) into a dict; the error names the bad line."""
    labels: dict[str, str] = {}
    for number, line in enumerate(text.replace(",", "\n").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise forms.ValidationError(f"Line {number} ({line!r}): expected key: value.")
        labels[key.strip()] = value.strip()
    return labels


def labels_text(labels: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in sorted((labels or {}).items()))


class LabelsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "env: dev\nteam: payments"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_LABELS_TEXT)
        kwargs.setdefault("help_text", "One key: value per line.")
        super().__init__(**kwargs)

    def clean(self, value):
        return parse_labels_text(super().clean(value) or "")


# --- Filters (GET) --------------------------------------------------------------------------------------


def _choices_with_any(choices) -> list[tuple[str, str]]:
    return [("", "Any"), *choices]


class LabelFilterMixin:
    def clean_labels(self):
        values = self.data.getlist("labels") if hasattr(self.data, "getlist") else []
        try:
            return queries.parse_label_filters(values)
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None


class ApplicationFilterForm(LabelFilterMixin, forms.Form):
    name = forms.CharField(required=False, max_length=100)
    kind = forms.ChoiceField(required=False, choices=_choices_with_any(ApplicationKind.choices))
    sync_status = forms.ChoiceField(
        required=False, choices=_choices_with_any(SyncStatus.choices), label="Sync status"
    )
    labels = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.TextInput(attrs={"placeholder": "env:dev, team:web"}),
    )


class DeploymentFilterForm(LabelFilterMixin, forms.Form):
    application = forms.CharField(
        required=False, max_length=100, widget=forms.TextInput(attrs={"placeholder": "name or ID"})
    )
    status = forms.ChoiceField(required=False, choices=_choices_with_any(DeploymentStatus.choices))
    labels = forms.CharField(
        required=False, max_length=1000, widget=forms.TextInput(attrs={"placeholder": "env:dev"})
    )
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def clean_cursor(self):
        token = self.cleaned_data["cursor"]
        if not token:
            return None
        try:
            return queries.Cursor.decode(token)
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None


class AuditFilterForm(forms.Form):
    verb = forms.CharField(
        required=False, max_length=64, widget=forms.TextInput(attrs={"placeholder": "e.g. deployment."})
    )
    actor = forms.CharField(required=False, max_length=200)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


# --- Applications ---------------------------------------------------------------------------------------


SUGGESTION_FIELDS = ("repo_id", "path", "config_filename", "name", "labels", "description")


def suggestion_values(suggestion: Suggestion) -> dict[str, str]:
    """What choosing a suggestion fills in, as the form's text values."""
    return {
        "piped": suggestion.piped_id,
        "suggestion": suggestion.key,
        "repo_id": suggestion.repo_id,
        "path": suggestion.path,
        "config_filename": suggestion.config_filename,
        "name": suggestion.name,
        "kind": suggestion.kind if suggestion.kind in ApplicationKind.values else ApplicationKind.ECS,
        "labels": labels_text(suggestion.labels),
        "description": suggestion.description,
    }


class ApplicationForm(forms.Form):
    """Add an application: where its config lives (fixed for good) and what it is called.

    The piped, its repository and its platform provider are chosen from what the piped reported, never
    typed. A suggestion (an app config the piped found in Git) fills in the rest: on a GET with
    `fill=suggestion` it replaces what was typed; on a POST it fills only the fields left empty, so the form
    also works without JavaScript (pick a suggestion, submit).
    """

    piped = forms.ChoiceField(
        help_text="The piped that deploys it.",
        error_messages={"required": "Choose the piped that deploys it."},
    )
    suggestion = forms.CharField(
        required=False,
        label="Found in Git",
        widget=forms.Select,
        help_text="An app config the piped found that no application is registered for. Empty fields are "
        "taken from it.",
    )
    repo_id = forms.CharField(
        label="Repository",
        widget=forms.Select,
        help_text="As reported by the piped.",
        error_messages={"required": "Choose one of the piped's repositories."},
    )
    path = forms.CharField(
        max_length=500,
        help_text="Directory of the app config inside the repository, e.g. services/api.",
    )
    # Empty rather than pre-filled, so that a suggestion's own file name fills it without JavaScript too.
    config_filename = forms.CharField(
        max_length=200,
        required=False,
        label="Config file",
        widget=forms.TextInput(attrs={"placeholder": DEFAULT_CONFIG_FILENAME}),
        help_text=f"Empty: {DEFAULT_CONFIG_FILENAME}.",
    )
    platform_provider = forms.CharField(
        label="Platform provider",
        widget=forms.Select,
        error_messages={"required": "Choose one of the piped's platform providers."},
    )
    kind = forms.ChoiceField(choices=ApplicationKind.choices, initial=ApplicationKind.ECS)
    name = forms.CharField(max_length=100)
    labels = LabelsField()
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, data=None, *, pipeds, suggestions=(), **kwargs):
        self.pipeds = {str(p.id): p for p in pipeds if not p.disabled}
        self.suggestions = {s.key: s for s in suggestions if s.piped_id in self.pipeds}
        if data is not None:
            data = self._fill_from_suggestion(data)
        super().__init__(data, **kwargs)
        chosen = self.data.get("piped") if self.is_bound else self.initial.get("piped")
        self.selected_piped = self.pipeds.get(chosen or "")
        # Without a chosen piped (or without JavaScript) every piped's choices are offered, grouped by
        # piped; once one is chosen, only its own. The POST is checked against the chosen piped in clean().
        shown = [self.selected_piped] if self.selected_piped else list(self.pipeds.values())
        self.fields["piped"].choices = [("", "Choose a piped")] + [
            (pid, p.name) for pid, p in self.pipeds.items()
        ]
        self.fields["repo_id"].widget.choices = [
            ("", "Choose a repository"),
            *_grouped(shown, lambda p: [(r, r) for r in reported_repo_ids(p)]),
        ]
        self.fields["platform_provider"].widget.choices = [
            ("", "Choose a platform provider"),
            *_grouped(shown, reported_providers),
        ]
        offered = [s for s in self.suggestions.values() if s.piped_id in {str(p.id) for p in shown}]
        self.fields["suggestion"].widget.choices = [
            ("", "None: enter the location below"),
            *_grouped(shown, lambda p: [(s.key, s.label) for s in offered if s.piped_id == str(p.id)]),
        ]
        self.offered_suggestions = offered

    def _fill_from_suggestion(self, data):
        suggestion = self.suggestions.get(data.get("suggestion") or "")
        if suggestion is None or (data.get("piped") and data.get("piped") != suggestion.piped_id):
            return data  # clean() names the problem
        data = data.copy()
        values = suggestion_values(suggestion)
        providers = reported_providers(self.pipeds[suggestion.piped_id])
        if len(providers) == 1:
            values["platform_provider"] = providers[0][0]  # the piped's only one
        for name, value in values.items():
            if not (data.get(name) or "").strip():
                data[name] = value
        return data

    def clean_config_filename(self) -> str:
        return self.cleaned_data["config_filename"].strip() or DEFAULT_CONFIG_FILENAME

    def _refuse_suggestion(self, message: str) -> None:
        """Name the problem on the suggestion; the fields the person left for it to fill are not at fault."""
        for name in (*SUGGESTION_FIELDS, "piped", "platform_provider"):
            if not (self.data.get(name) or "").strip():
                self.errors.pop(name, None)
        self.add_error("suggestion", message)

    @property
    def has_reported_repositories(self) -> bool:
        shown = [self.selected_piped] if self.selected_piped else self.pipeds.values()
        return any(reported_repo_ids(p) for p in shown)

    def clean(self):
        data = super().clean()
        piped = self.pipeds.get(data.get("piped") or "")
        key = data.get("suggestion")
        suggestion = self.suggestions.get(key) if key else None
        if key and suggestion is None:
            self._refuse_suggestion(
                "This suggestion is not offered any more: the application may have been added already, "
                "or the piped no longer finds its config."
            )
        if piped is None:
            return data
        if suggestion is not None and suggestion.piped_id != str(piped.id):
            self._refuse_suggestion(
                f"This suggestion was found by piped {suggestion.piped_name}, not by {piped.name}: "
                "choose that piped or another suggestion."
            )
        repo_id = data.get("repo_id")
        repos = reported_repo_ids(piped)
        if repo_id and repo_id not in repos:
            if repos:
                known = ", ".join(repos)
                message = f"Piped {piped.name} does not report a repository {repo_id!r}; it reports: {known}."
            else:
                message = (
                    f"Piped {piped.name} has not reported any repository yet: it lists them when it starts."
                )
            self.add_error("repo_id", message)
        provider = data.get("platform_provider")
        providers = [n for n, _ in reported_providers(piped)]
        if provider and provider not in providers:
            known = ", ".join(providers) or "none reported yet"
            self.add_error(
                "platform_provider",
                f"Piped {piped.name} has no platform provider named {provider!r} (it reports: {known}).",
            )
        return data


def application_form_initial(query, pipeds, suggestions: list[Suggestion]) -> tuple[dict, str]:
    """The add form's values for a GET: what was typed so far (htmx sends it when the piped or the
    suggestion changes), a suggestion's values when one was just picked, and the piped's only repository
    or provider when it has just one. Answers the values and a note for the person, if any."""
    initial = {k: v for k, v in query.items() if k in ApplicationForm.base_fields}
    note = ""
    by_key = {s.key: s for s in suggestions}
    chosen = by_key.get(initial.get("suggestion") or "")
    if initial.get("suggestion") and chosen is None:
        initial.pop("suggestion")
        note = (
            "That suggestion is not offered any more: the application may have been added already, or the "
            "piped no longer finds its config."
        )
    elif chosen is not None and query.get("fill") == "suggestion":
        initial.update(suggestion_values(chosen))
    elif chosen is not None and initial.get("piped") not in ("", None, chosen.piped_id):
        initial.pop("suggestion")  # the person switched to another piped
    piped = next((p for p in pipeds if str(p.id) == initial.get("piped") and not p.disabled), None)
    if piped is not None:
        repos = reported_repo_ids(piped)
        if initial.get("repo_id") not in repos:
            initial["repo_id"] = repos[0] if len(repos) == 1 else ""
        providers = [n for n, _ in reported_providers(piped)]
        if initial.get("platform_provider") not in providers:
            initial["platform_provider"] = providers[0] if len(providers) == 1 else ""
    return initial, note


def _grouped(pipeds, options) -> list:
    return [(p.name, choices) for p in pipeds if (choices := options(p))]


def reported_repo_ids(piped) -> list[str]:
    return [
        str(r.get("repo_id") or r.get("id") or "") for r in piped.repositories or [] if isinstance(r, dict)
    ]


def reported_providers(piped) -> list[tuple[str, str]]:
    providers = []
    for p in piped.platform_providers or []:
        if isinstance(p, dict) and p.get("name"):
            kind = p.get("type") or ""
            providers.append((str(p["name"]), f"{p['name']} ({kind})" if kind else str(p["name"])))
    return providers


class ApplicationEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    piped = forms.ChoiceField()
    platform_provider = forms.CharField(max_length=100, label="Platform provider")
    labels = LabelsField()
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, pipeds, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["piped"].choices = [(str(p.id), p.name) for p in pipeds]


class SyncForm(forms.Form):
    strategy = forms.ChoiceField(
        choices=SyncStrategy.choices,
        initial=SyncStrategy.AUTO,
        help_text="Auto picks the pipeline when the change needs one; Quick sync rolls out at once.",
    )


class CancelForm(forms.Form):
    rollback = forms.ChoiceField(
        required=False, choices=[("", "As configured"), ("yes", "With rollback"), ("no", "Without rollback")]
    )


# --- Settings -------------------------------------------------------------------------------------------


class ProjectForm(forms.Form):
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    shared_sso_config = forms.CharField(
        required=False,
        max_length=100,
        label="Shared SSO config",
        help_text="Name of a sharedSSOConfigs entry of the control-plane config.",
    )
    allow_stray_as_viewer = forms.BooleanField(
        required=False,
        label="Let SSO users who match no user group in as Viewers",
    )


class PipedForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class UserGroupForm(forms.Form):
    sso_group = forms.CharField(max_length=200, label="SSO group")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class APIKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=APIKeyRole.choices, initial=APIKeyRole.READ_ONLY)


class StaticAdminForm(forms.Form):
    username = forms.CharField(max_length=100)
    password = forms.CharField(
        min_length=12,
        max_length=200,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters.",
    )
    password_again = forms.CharField(
        max_length=200, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), label="Again"
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class EndSessionsForm(forms.Form):
    username = forms.CharField(max_length=200)
