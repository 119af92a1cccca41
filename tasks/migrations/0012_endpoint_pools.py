"""A project's two endpoints become a pool, and each task records the pair it compares.

Every project's endpoint_a and endpoint_b become its first two pool rows (enabled, weight 1).
Each task's pair is read from the endpoints that answered its first turn (the truth, even if
an admin changed the project's endpoints since), else from its project's pair.
"""

from decimal import Decimal

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Greatest, Least


def fill_pools_and_pairs(apps, schema_editor):
    Project = apps.get_model("tasks", "Project")
    ProjectEndpoint = apps.get_model("tasks", "ProjectEndpoint")
    Task = apps.get_model("tasks", "Task")
    Candidate = apps.get_model("tasks", "Candidate")
    ProjectEndpoint.objects.bulk_create(
        ProjectEndpoint(project_id=project_id, endpoint_id=endpoint_id)
        for project_id, a, b in Project.objects.values_list("pk", "endpoint_a_id", "endpoint_b_id")
        for endpoint_id in (a, b)
    )
    first_turn = (
        Candidate.objects.filter(turn__task=OuterRef("pk"), turn__number=1)
        .order_by()
        .values("turn__task")
    )
    Task.objects.annotate(
        answered=Subquery(first_turn.annotate(n=Count("endpoint_id", distinct=True)).values("n"))
    ).filter(answered=2).update(
        first_endpoint_id=Subquery(first_turn.annotate(m=Min("endpoint_id")).values("m")),
        second_endpoint_id=Subquery(first_turn.annotate(m=Max("endpoint_id")).values("m")),
    )
    projects = Project.objects.filter(pk=OuterRef("project_id"))
    Task.objects.filter(Q(first_endpoint_id=None) | Q(second_endpoint_id=None)).update(
        first_endpoint_id=Subquery(
            projects.annotate(m=Least(F("endpoint_a_id"), F("endpoint_b_id"))).values("m")
        ),
        second_endpoint_id=Subquery(
            projects.annotate(m=Greatest(F("endpoint_a_id"), F("endpoint_b_id"))).values("m")
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0011_evidence"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProjectEndpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "weight",
                    models.DecimalField(
                        decimal_places=2,
                        default=Decimal("1"),
                        max_digits=7,
                        validators=[django.core.validators.MinValueValidator(Decimal("0.01"))],
                    ),
                ),
                ("is_enabled", models.BooleanField(default=True)),
                (
                    "endpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="pools",
                        to="tasks.modelendpoint",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="pool",
                        to="tasks.project",
                    ),
                ),
            ],
            options={"ordering": ["created_at", "pk"]},
        ),
        migrations.AddConstraint(
            model_name="projectendpoint",
            constraint=models.UniqueConstraint(
                fields=("project", "endpoint"), name="one_pool_row_per_endpoint"
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="pair_sampling",
            field=models.CharField(
                choices=[
                    ("uniform", "Uniform: every pair equally often"),
                    ("weighted", "Weighted: by the endpoints' weights"),
                    ("adaptive", "Adaptive: the pairs the leaderboard is least sure of"),
                ],
                default="adaptive",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="task",
            name="first_endpoint",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tasks.modelendpoint",
            ),
        ),
        migrations.AddField(
            model_name="task",
            name="second_endpoint",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tasks.modelendpoint",
            ),
        ),
        migrations.RunPython(fill_pools_and_pairs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="task",
            name="first_endpoint",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tasks.modelendpoint",
            ),
        ),
        migrations.AlterField(
            model_name="task",
            name="second_endpoint",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tasks.modelendpoint",
            ),
        ),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.CheckConstraint(
                condition=models.Q(("first_endpoint__lt", models.F("second_endpoint"))),
                name="task_pair_in_id_order",
            ),
        ),
        migrations.RemoveField(model_name="project", name="endpoint_a"),
        migrations.RemoveField(model_name="project", name="endpoint_b"),
    ]
