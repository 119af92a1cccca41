from __future__ import annotations

import factory
from django.contrib.auth.models import User

from marlin import roles
from repos.models import Repository
from tasks.models import ModelEndpoint, Project, ProjectEndpoint


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs) -> None:
        if create and extracted:
            roles.user_set_role(user=self, role=extracted)


class ModelEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelEndpoint

    name = factory.Sequence(lambda n: f"endpoint-{n}")
    provider = ModelEndpoint.Provider.DEMO
    model_id = factory.LazyAttribute(lambda e: f"{e.name}-model")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    guidelines = "Judge as a senior engineer would."
    pay_per_task = "280.00"
    min_justification_chars = 20

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """`endpoints=[...]` is the pool; `endpoint_a=`/`endpoint_b=` name the first two of a
        two-endpoint pool (the rest are made up)."""
        endpoints = kwargs.pop("endpoints", None)
        first, second = kwargs.pop("endpoint_a", None), kwargs.pop("endpoint_b", None)
        project = super()._create(model_class, *args, **kwargs)
        if endpoints is None:
            endpoints = [first or ModelEndpointFactory(), second or ModelEndpointFactory()]
        for endpoint in endpoints:
            ProjectEndpoint.objects.create(project=project, endpoint=endpoint)
        return project


def pool_endpoints(project: Project) -> list[ModelEndpoint]:
    """The project's pool in the order it was made (endpoint_a, endpoint_b, ...)."""
    return [row.endpoint for row in project.pool.select_related("endpoint").order_by("pk")]


class RepositoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Repository

    full_name = factory.Sequence(lambda n: f"octo/repo{n}")
    clone_url = factory.LazyAttribute(lambda r: f"https://github.com/{r.full_name}.git")
    html_url = factory.LazyAttribute(lambda r: f"https://github.com/{r.full_name}")
    default_branch = "main"
    language = "Python"
    stars = 100
    description = "A repository"


def pair_of(project: Project) -> dict[str, ModelEndpoint]:
    """A task's pair fields for its project's first two pool endpoints, in id order."""
    first, second = sorted(pool_endpoints(project)[:2], key=lambda e: e.pk)
    return {"first_endpoint": first, "second_endpoint": second}
