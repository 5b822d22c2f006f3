"""Portal forms: they parse and check the shape of input; the services decide what is allowed."""

from django import forms

from apps.applications.choices import DEFAULT_CONFIG_FILENAME, ApplicationKind, SyncStatus
from apps.core.errors import DomainError, InvalidInput
from apps.deployments.choices import DeploymentStatus, SyncStrategy
from apps.projects.choices import APIKeyRole, Role

from . import queries

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


class ApplicationForm(forms.Form):
    """Add an application: where its config lives (fixed for good) and what it is called."""

    name = forms.CharField(max_length=100)
    piped = forms.ChoiceField(help_text="The piped that deploys it.")
    repo_id = forms.ChoiceField(label="Repository", help_text="As reported by the piped.")
    path = forms.CharField(
        max_length=500,
        help_text="Directory of the app config inside the repository, e.g. services/api.",
    )
    config_filename = forms.CharField(max_length=200, initial=DEFAULT_CONFIG_FILENAME, label="Config file")
    platform_provider = forms.ChoiceField(label="Platform provider")
    kind = forms.ChoiceField(choices=ApplicationKind.choices, initial=ApplicationKind.ECS)
    labels = LabelsField()
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, pipeds, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeds = {str(p.id): p for p in pipeds if not p.disabled}
        # A bound form accepts any piped's repositories so that clean() can name a mismatch; an unbound
        # one with a chosen piped (what htmx asks for) offers only that piped's.
        selected = None if self.is_bound else self.initial.get("piped")
        shown = [self.pipeds[selected]] if selected in self.pipeds else list(self.pipeds.values())
        self.fields["piped"].choices = [("", "Choose a piped")] + [
            (pid, p.name) for pid, p in self.pipeds.items()
        ]
        # Without JavaScript every piped's repositories are offered, grouped by piped; with htmx the
        # form is re-rendered for the chosen piped only.
        self.fields["repo_id"].choices = [("", "Choose a repository")] + [
            (p.name, [(r, r) for r in _repo_ids(p)]) for p in shown if _repo_ids(p)
        ]
        self.fields["platform_provider"].choices = [("", "Choose a platform provider")] + [
            (p.name, [(n, label) for n, label in _providers(p)]) for p in shown if _providers(p)
        ]

    def clean(self):
        data = super().clean()
        piped = self.pipeds.get(data.get("piped") or "")
        if piped is None:
            return data
        repo_id = data.get("repo_id")
        if repo_id and repo_id not in _repo_ids(piped):
            self.add_error("repo_id", f"Piped {piped.name} does not watch repository {repo_id!r}.")
        provider = data.get("platform_provider")
        if provider and provider not in {n for n, _ in _providers(piped)}:
            self.add_error(
                "platform_provider", f"Piped {piped.name} has no platform provider named {provider!r}."
            )
        return data


def _repo_ids(piped) -> list[str]:
    return [
        str(r.get("repo_id") or r.get("id") or "") for r in piped.repositories or [] if isinstance(r, dict)
    ]


def _providers(piped) -> list[tuple[str, str]]:
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
