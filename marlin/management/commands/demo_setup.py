from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from marlin import roles
from marlin.demo_content import DEMO_REPOSITORIES
from repos import git_client
from repos import services as repo_services
from repos.models import Repository
from tasks.models import ModelEndpoint, Project

DEMO_USERS = [
    ("contractor", "contractor-demo-pass", roles.CONTRACTOR),
    ("contractor2", "contractor2-demo-pass", roles.CONTRACTOR),
    ("reviewer", "reviewer-demo-pass", roles.REVIEWER),
    ("admin", "admin-demo-pass", roles.ADMIN),
]


class Command(BaseCommand):
    help = "Create demo users, endpoints, a project and repositories (safe to run again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--git-port", default="8765", help="port of the demo git server")

    def handle(self, *args, **options) -> None:
        git_root = Path(settings.VAR_DIR) / "demo-git"
        base_url = f"http://127.0.0.1:{options['git_port']}"
        with transaction.atomic():
            self._users()
            alpha, _ = ModelEndpoint.objects.get_or_create(
                name="demo-alpha", defaults={"model_id": "demo-alpha-1"}
            )
            beta, _ = ModelEndpoint.objects.get_or_create(
                name="demo-beta", defaults={"model_id": "demo-beta-1"}
            )
            Project.objects.get_or_create(
                name="Demo project",
                defaults={
                    "guidelines": (
                        "Write prompts a senior engineer would write in a pull request description. "
                        "Judge both candidates on the rubric, then say which you prefer and why."
                    ),
                    "pay_per_task": "280.00",
                    "endpoint_a": alpha,
                    "endpoint_b": beta,
                },
            )
            for full_name, (description, language, files) in DEMO_REPOSITORIES.items():
                owner, name = full_name.split("/")
                bare = git_root / owner / f"{name}.git"
                if not (bare / "HEAD").exists():
                    git_client.create_bare_repository(bare, files, message="Initial commit")
                repository, _ = Repository.objects.update_or_create(
                    full_name=full_name,
                    defaults={
                        "clone_url": f"{base_url}/{full_name}.git",
                        "html_url": f"{base_url}/{full_name}",
                        "description": description,
                        "language": language,
                        "default_branch": "main",
                    },
                )
                if repository.clone_status in (
                    Repository.CloneStatus.NOT_CLONED,
                    Repository.CloneStatus.FAILED,
                ):
                    repo_services.repository_queue_clone(repository=repository)
        self.stdout.write("Demo users (username / password):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {role:<11} {username} / {password}")

    def _users(self) -> None:
        for username, password, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            roles.user_set_role(user=user, role=role)
