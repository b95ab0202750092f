"""Sign-in, sign-out and the landing page that sends each role to its side."""

from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from .roles import Role, who


@require_GET
def home(request):
    found = who(request.user)
    if found.role == Role.ANONYMOUS:
        return redirect("login")
    if found.is_engineer:
        return redirect("hud")
    return redirect("tickets:list")


class LoginView(auth_views.LoginView):
    """Sign in. Lockouts after repeated failures are django-axes' (accounts/signin.py), as at the admin."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True
