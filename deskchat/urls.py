"""Top-level URL map."""

from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views

admin.site.site_header = "DeskChat administration"
admin.site.site_title = "DeskChat admin"
admin.site.index_title = "Service desk settings"

urlpatterns = [
    path("", account_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("tickets/", include("tickets.urls")),
    path("", include("chat.urls")),
    path("admin/", admin.site.urls),
]
