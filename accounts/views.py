"""Sign-in, sign-out and the landing page that sends each role to its side."""

from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from . import services


@require_GET
def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if hasattr(request.user, "engineer"):
        return redirect("hud")
    return redirect("tickets:list")


class LoginView(auth_views.LoginView):
    """Sign in, with a lockout after repeated failures for one username from one address."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username, address = request.POST.get("username", ""), client_address(request)
        wait = services.lockout_remaining(username=username, address=address)
        if wait:
            # Refused before the password is checked, so a locked-out guesser learns nothing.
            return self.locked_out(wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        services.clear_login_failures(
            username=form.cleaned_data.get("username", ""), address=client_address(self.request)
        )
        return super().form_valid(form)

    def form_invalid(self, form):
        username, address = self.request.POST.get("username", ""), client_address(self.request)
        if username:
            services.record_login_failure(username=username, address=address)
            wait = services.lockout_remaining(username=username, address=address)
            if wait:
                return self.locked_out(wait)
        return super().form_invalid(form)

    def locked_out(self, seconds: int):
        minutes = max(1, -(-seconds // 60))
        message = (
            f"Too many failed sign-in attempts for this username. For your security, sign-in is "
            f"paused; try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
        form = self.get_form_class()(self.request, initial={"username": self.request.POST.get("username", "")[:150]})
        context = self.get_context_data(form=form, lockout=message)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(seconds)
        return response


def client_address(request) -> str:
    """Return the client's IP address; daphne's --proxy-headers puts the real one in REMOTE_ADDR."""
    return (request.META.get("REMOTE_ADDR") or "unknown")[:45]
