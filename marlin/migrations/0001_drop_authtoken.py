"""rest_framework.authtoken is gone: its table held every key in plain text, so it is dropped.

Existing tokens stop working; new ones come from `manage.py create_api_token USER` (knox).
"""

from django.db import migrations


def drop_authtoken(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" in connection.introspection.table_names():
        schema_editor.execute(f"DROP TABLE {schema_editor.quote_name('authtoken_token')}")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # Their permissions (view_tokenproxy, …) go with them by cascade.
    ContentType.objects.filter(app_label="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(drop_authtoken, migrations.RunPython.noop)]
