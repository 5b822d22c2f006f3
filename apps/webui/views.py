"""Portal pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def home(request: HttpRequest) -> HttpResponse:
    if request.principal is None:
        return redirect("accounts:login")
    return render(request, "webui/home.html")
