"""Give the engineers who exist already the Engineers group (chat/staff_access.py); new ones join on creation."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def forwards(apps, schema_editor):
    # Permissions are made after all migrations ran; this one needs the template's now.
    config = apps.get_app_config("chat")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Engineer = apps.get_model("accounts", "Engineer")
    group, _ = Group.objects.get_or_create(name="Engineers")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="chat",
            codename__in=[f"{action}_messagetemplate" for action in ("view", "add", "change", "delete")],
        )
    )
    group.user_set.add(*Engineer.objects.values_list("user_id", flat=True))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_request_returning_and_draft"),
        ("accounts", "0002_login_failure"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
