"""Top-level URL map."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView

from accounts import views as account_views

admin.site.site_header = "DeskChat administration"
admin.site.site_title = "DeskChat admin"
admin.site.index_title = "Service desk settings"

# Browsers ask for /favicon.ico on pages that name no icon (and some always do): send them to the one we have.
favicon = require_safe(cache_control(max_age=86400)(RedirectView.as_view(url=static("favicon.svg"), permanent=True)))

urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("tickets/", include("tickets.urls")),
    path("", include("chat.urls")),
    path("admin/", admin.site.urls),
]
