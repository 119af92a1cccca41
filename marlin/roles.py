"""The three roles as groups, and the permissions each one carries.

The permissions are the ones views check; the groups are how an admin hands them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.contrib.auth.models import User

CONTRACTOR = "contractor"
REVIEWER = "reviewer"
ADMIN = "admin"

# (app_label, codename) per role. Custom codenames are declared in the models' Meta.
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    CONTRACTOR: [("tasks", "work_on_tasks")],
    REVIEWER: [("reviews", "review_tasks")],
    ADMIN: [
        ("reviews", "export_dataset"),
        ("reviews", "oversee_reviews"),
        ("reviews", "view_review"),
        ("reviews", "view_reviewclaim"),
        ("reviews", "view_earning"),
        # Quality control: gold turns are the admin's to mark; the rest is read.
        *[("reviews", f"{verb}_goldturn") for verb in ("view", "add", "change")],
        *[
            ("reviews", f"view_{model}")
            for model in ("judgingtask", "submissionflag", "reviewaudit")
        ],
        *[
            ("tasks", f"{verb}_{model}")
            for verb in ("view", "add", "change")
            for model in ("project", "modelendpoint", "projectendpoint")
        ],
        *[
            ("tasks", f"view_{model}")
            for model in ("task", "turn", "candidate", "judgement", "taskevent")
        ],
        *[("repos", f"{verb}_repository") for verb in ("view", "add", "change")],
        # Check recipes are the admin's to write; evidence runs are read, never edited.
        *[("tasks", f"{verb}_checkrecipe") for verb in ("view", "add", "change", "delete")],
        ("tasks", "view_evidencerun"),
        # Admins manage people and their roles.
        *[("auth", f"{verb}_user") for verb in ("view", "add", "change")],
        ("auth", "view_group"),
        # API tokens: listed and revoked, never read (knox stores only a digest).
        ("knox", "view_authtoken"),
        ("knox", "delete_authtoken"),
        # Login lockouts: seen and lifted (deleting the attempts unlocks); the sign-in logs read.
        ("axes", "view_accessattempt"),
        ("axes", "delete_accessattempt"),
        ("axes", "view_accesslog"),
        ("axes", "view_accessfailurelog"),
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
        # A migration's historical state may predate a permission added later; the
        # post_migrate run at the end of every migrate adds it then.
        wanted = [
            permission
            for app_label, codename in perms
            for permission in Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            )
        ]
        group.permissions.add(*wanted)


def on_post_migrate(sender: Any, apps: Any = None, verbosity: int = 0, **kwargs: Any) -> None:
    from django.apps import apps as global_apps

    ensure_role_groups(apps or global_apps, verbosity=verbosity)


def user_set_role(*, user: User, role: str) -> None:
    """Give `user` exactly one role. Admins get staff status, which the Django admin needs."""
    from django.contrib.auth.models import Group

    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}")
    user.groups.set([Group.objects.get(name=role)])
    user.is_staff = role == ADMIN
    user.save(update_fields=["is_staff"])
