"""Migration 0015: Judgement.minhash from a JSON list of integers to packed bytes, both ways,
with every stored signature kept and comparable with the ones computed from now on."""

from __future__ import annotations

import importlib
import random

import pytest

from reviews.minhash import NUM_HASHES, SIGNATURE_BYTES, jaccard_estimate, minhash
from tests.migration_steps import back_to_latest, migrate_to  # noqa: F401 - a fixture

BEFORE = [("tasks", "0014_pair_outcome_counts")]
AFTER = [("tasks", "0015_judgement_minhash_packed")]
migration = importlib.import_module("tasks.migrations.0015_judgement_minhash_packed")

TEXT = "A checks the zero divisor before dividing; B divides blindly and crashes."


def _as_list(signature: bytes) -> list[int]:
    """A signature as the JSON column held it: the same integers, unpacked."""
    return [int.from_bytes(signature[i : i + 8], "big") for i in range(0, len(signature), 8)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_latest")
def test_stored_signatures_are_packed_and_unpacked_unchanged():
    rng = random.Random(15)  # noqa: S311 - synthetic signatures
    extreme = [(1 << 61) - 2, 0, *(rng.getrandbits(61) for _ in range(NUM_HASHES - 2))]
    stored = {
        "computed": _as_list(minhash(TEXT)),
        "extreme values": extreme,
        "no words": [],
        "too short": [1, 2, 3],
    }
    old = migrate_to(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="mina")
    repository = old.get_model("repos", "Repository").objects.create(
        full_name="octo/calc", clone_url="https://example.com/octo/calc.git"
    )
    Endpoint = old.get_model("tasks", "ModelEndpoint")
    first, second = (Endpoint.objects.create(name=f"model-{n}") for n in (1, 2))
    project = old.get_model("tasks", "Project").objects.create(name="Parsers")
    task = old.get_model("tasks", "Task").objects.create(
        project=project, repository=repository, contractor=user, base_ref="main",
        commit_sha="a" * 40, title="t", kind="bug_fix", status="ACCEPTED",
        first_endpoint=first, second_endpoint=second,
    )  # fmt: skip
    Turn = old.get_model("tasks", "Turn")
    Judgement = old.get_model("tasks", "Judgement")
    ids = {}
    for number, (name, values) in enumerate(stored.items(), start=1):
        turn = Turn.objects.create(task=task, number=number, prompt="Fix it")
        ids[name] = Judgement.objects.create(
            turn=turn, round=1, preference=-2, scores={}, justification=TEXT, minhash=values
        ).pk

    new = migrate_to(AFTER)
    packed = {
        name: bytes(new.get_model("tasks", "Judgement").objects.get(pk=pk).minhash)
        for name, pk in ids.items()
    }
    # What the application computes today, byte for byte: old signatures still compare.
    assert packed["computed"] == minhash(TEXT)
    assert jaccard_estimate(packed["computed"], minhash(TEXT)) == 1.0
    assert len(packed["extreme values"]) == SIGNATURE_BYTES
    assert _as_list(packed["extreme values"]) == extreme
    # Nothing comparable: the flags compute these again from the text.
    assert packed["no words"] == packed["too short"] == b""

    back = migrate_to(BEFORE)
    lists = {
        name: back.get_model("tasks", "Judgement").objects.get(pk=pk).minhash
        for name, pk in ids.items()
    }
    assert lists == {**stored, "too short": []}


def test_the_python_packer_of_other_databases_agrees_with_the_application():
    """SQLite runs the migration's Python path (PostgreSQL its SQL, tested above)."""
    values = _as_list(minhash(TEXT))
    assert migration.pack_values(values) == minhash(TEXT)
    assert migration.unpack_values(memoryview(minhash(TEXT))) == values
    assert migration.pack_values([]) == migration.pack_values([1, 2]) == b""
    assert migration.pack_values("not a list") == b""
    assert migration.unpack_values(b"\x00" * 7) == []
