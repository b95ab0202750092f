from django.apps import AppConfig
from django.db.models.signals import post_save


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from accounts.models import Engineer

        from .staff_access import join_engineers_group

        # However an engineer is made (admin, demo data, a script), they may keep their own templates.
        post_save.connect(join_engineers_group, sender=Engineer, dispatch_uid="chat.join_engineers_group")
