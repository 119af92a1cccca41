from __future__ import annotations

import factory
from django.contrib.auth.models import User

from marlin import roles
from repos.models import Repository
from tasks.models import ModelEndpoint, Project


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
    endpoint_a = factory.SubFactory(ModelEndpointFactory)
    endpoint_b = factory.SubFactory(ModelEndpointFactory)


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
