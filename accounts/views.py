"""Sign-in, sign-out and the landing page that sends each role to its side."""

from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


@require_GET
def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if hasattr(request.user, "engineer"):
        return redirect("hud")
    return redirect("tickets:list")


class LoginView(auth_views.LoginView):
    """Sign in. Lockouts after repeated failures are django-axes' (accounts/signin.py), as at the admin."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True
