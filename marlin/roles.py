"""The three roles as groups, and the permissions each one carries.

The permissions are the ones views check; the groups are how an admin hands them out.
"""

from __future__ import annotations

from typing import Any

CONTRACTOR = "contractor"
REVIEWER = "reviewer"
ADMIN = "admin"

# (app_label, codename) per role. Custom codenames are declared in the models' Meta.
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    CONTRACTOR: [("tasks", "work_on_tasks")],
    REVIEWER: [("reviews", "review_tasks")],
    ADMIN: [
        ("reviews", "export_dataset"),
        ("tasks", "view_task"),
        ("tasks", "view_project"),
        ("tasks", "change_project"),
        ("tasks", "add_project"),
        ("tasks", "view_modelendpoint"),
        ("tasks", "change_modelendpoint"),
        ("tasks", "add_modelendpoint"),
        ("repos", "view_repository"),
        ("repos", "change_repository"),
        ("repos", "add_repository"),
        ("reviews", "view_review"),
    ],
}


def ensure_role_groups(apps: Any, verbosity: int = 0) -> None:
    """Create the role groups with their permissions; safe to run any number of times.

    Takes the app registry so migrations can call it with their historical models.
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    # On a fresh database permissions are only created after all migrations; make them now.
    for app_config in apps.get_app_configs():
        if apps is global_apps:
            create_permissions(app_config, verbosity=verbosity)
            continue
        # Historical app configs carry no models module, which create_permissions requires.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=verbosity)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in perms
        ]
        group.permissions.add(*wanted)


def on_post_migrate(sender: Any, apps: Any = None, verbosity: int = 0, **kwargs: Any) -> None:
    from django.apps import apps as global_apps

    ensure_role_groups(apps or global_apps, verbosity=verbosity)
