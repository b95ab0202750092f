from django.urls import path

from . import views

app_name = "tickets"
urlpatterns = [
    path("", views.ticket_list, name="list"),
    path("new/", views.ticket_create, name="create"),
    path("<int:ticket_id>/", views.ticket_detail, name="detail"),
    path("<int:ticket_id>/notes/", views.note_add, name="note_add"),
    path("<int:ticket_id>/time/<int:entry_id>/", views.time_entry, name="time_entry"),
    path("<int:ticket_id>/time/<int:entry_id>/edit/", views.time_entry_edit, name="time_entry_edit"),
]
