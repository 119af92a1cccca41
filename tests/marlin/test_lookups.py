"""`__any_of=IdList(...)` (marlin/lookups.py) selects what `__in` selects, sent as one array."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marlin.lookups import IdList
from repos.models import Repository
from tests.factories import RepositoryFactory


@pytest.mark.django_db
def test_any_of_selects_what_in_selects_with_one_parameter():
    made = [RepositoryFactory() for _ in range(5)]
    wanted = [made[0].pk, made[3].pk, made[4].pk, 10**9]
    with CaptureQueriesContext(connection) as ctx:
        found = sorted(
            Repository.objects.filter(pk__any_of=IdList(wanted)).values_list("pk", flat=True)
        )
    assert found == sorted(Repository.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == sorted(wanted[:3])
    (sql,) = [q["sql"] for q in ctx.captured_queries]
    # One array, not a placeholder per id.
    assert "= ANY(ARRAY[" in sql
    assert list(Repository.objects.filter(pk__any_of=IdList([]))) == []


@pytest.mark.django_db
def test_any_of_takes_only_an_id_list():
    with pytest.raises(TypeError, match="any_of takes an IdList"):
        list(Repository.objects.filter(pk__any_of=[1, 2]))
    with pytest.raises(ValueError):
        IdList(["1; DROP TABLE x"])
