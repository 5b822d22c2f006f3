"""Portal URLs of the notifications app, namespace `notifications`."""

from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("settings/pipeds/<uuid:piped_id>/notifications/", views.piped_attempts, name="piped_attempts"),
]
