"""The portal page of a piped's notification deliveries: every attempt, newest first (Admins only)."""

from datetime import datetime

from django import forms
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from apps.webui.views.common import form_status, portal_view, render_page

from . import services
from .choices import Outcome


class AttemptFilterForm(forms.Form):
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    before = forms.CharField(required=False, max_length=80, widget=forms.HiddenInput)

    def clean_before(self) -> tuple[datetime, int] | None:
        value = self.cleaned_data["before"].strip()
        if not value:
            return None
        at, _, pk = value.rpartition("|")
        parsed = parse_datetime(at)
        if parsed is None or not pk.isdigit():
            raise forms.ValidationError("This page link is damaged: start again from the newest attempts.")
        return parsed, int(pk)


def cursor(key: tuple[datetime, int] | None) -> str:
    return f"{key[0].isoformat()}|{key[1]}" if key else ""


@portal_view
@require_GET
def piped_attempts(request: HttpRequest, principal, piped_id) -> HttpResponse:
    piped = services.get_piped_for_notifications(principal, piped_id)
    form = AttemptFilterForm(request.GET)
    attempts, next_key = [], None
    if form.is_valid():
        attempts, next_key = services.list_attempts(
            piped, outcome=form.cleaned_data["outcome"], before=form.cleaned_data["before"]
        )
    context = {
        "piped": piped,
        "form": form,
        "attempts": attempts,
        "next_before": cursor(next_key),
        "first_page": not request.GET.get("before"),
        "tab": "pipeds",
    }
    return render_page(request, "notifications/piped_attempts.html", context, status=form_status(form))
