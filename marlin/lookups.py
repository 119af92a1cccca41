"""`field__any_of=IdList(ids)`: the rows whose field is one of a long list of ids.

The ORM's `__in` prepares every element of its list in Python (each is resolved, checked
and converted on its own: ~5 us an id) and sends one placeholder per id. An export reads
each table of a chunk by the chunk's 500 task ids, eleven tables a chunk, so that work was
a second and more of a 100k export. IdList is not a list, so the ORM leaves it whole; on
PostgreSQL it goes as one array parameter (`= ANY(%s)`, which PostgreSQL plans as it plans
an IN list), elsewhere as IN with a placeholder per id.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import EmptyResultSet
from django.db.models import ForeignObject, IntegerField, Lookup


class IdList:
    """Whole ids, as given (ints only: they are sent as they are)."""

    __slots__ = ("ids",)

    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = [int(i) for i in ids]


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> IdList:
        if not isinstance(self.rhs, IdList):
            raise TypeError("any_of takes an IdList")
        return self.rhs

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        ids = self.rhs.ids
        if not ids:
            raise EmptyResultSet
        return f"{lhs} IN ({', '.join(['%s'] * len(ids))})", [*lhs_params, *ids]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs.ids:
            raise EmptyResultSet
        return f"{lhs} = ANY(%s)", [*lhs_params, self.rhs.ids]


IntegerField.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)
