from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0009_candidate_lease"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="focus_files",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="candidate",
            name="failure_detail",
            field=models.TextField(blank=True),
        ),
    ]
