from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.choose_project, name="login"),
    path("login/<str:project_id>/", views.project_login, name="project_login"),
    path("logout/", views.logout, name="logout"),
]
