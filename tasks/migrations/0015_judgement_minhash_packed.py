"""Judgement.minhash from a JSON list of 64 integers to 512 packed bytes (issue 19).

A submit compares the new justification with the contractor's last 500 signatures; as JSON
lists they had to be parsed into Python integers and compared one by one (~2 ms of a 15 ms
submit), packed they are compared as one array. Each value is below 2**61, so PostgreSQL's
int8send (big-endian) packs it as the application does (">Q"). A row whose list is empty or
not 64 integers gets no signature: the flags compute it again from the text when its task is
next submitted, as they do for a row written before signatures were stored.
"""

import struct

from django.db import migrations, models

NUM_HASHES = 64
PACKED = struct.Struct(f">{NUM_HASHES}Q")

PACK_ON_POSTGRESQL = """
UPDATE tasks_judgement j
   SET minhash_packed = p.packed
  FROM (SELECT j2.id, string_agg(int8send(e.value::bigint), ''::bytea ORDER BY e.n) AS packed
          FROM tasks_judgement j2,
               jsonb_array_elements_text(j2.minhash) WITH ORDINALITY AS e(value, n)
         WHERE jsonb_typeof(j2.minhash) = 'array' AND jsonb_array_length(j2.minhash) = 64
         GROUP BY j2.id) p
 WHERE p.id = j.id
"""

UNPACK_ON_POSTGRESQL = """
UPDATE tasks_judgement j
   SET minhash = coalesce(
         (SELECT jsonb_agg(('x' || encode(substring(j.minhash_packed FROM 8 * i + 1 FOR 8), 'hex'))::bit(64)::bigint
                           ORDER BY i)
            FROM generate_series(0, 63) AS i),
         '[]'::jsonb)
 WHERE length(j.minhash_packed) = 512
"""


def pack_values(values) -> bytes:
    ok = isinstance(values, list) and len(values) == NUM_HASHES
    return PACKED.pack(*values) if ok else b""


def unpack_values(packed) -> list[int]:
    packed = bytes(packed)
    return list(PACKED.unpack(packed)) if len(packed) == PACKED.size else []


def _batches(judgements, size=2000):
    batch = []
    for judgement in judgements.iterator(chunk_size=size):
        batch.append(judgement)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _convert(apps, schema_editor, *, sql, source, target, convert):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(sql)
        return
    Judgement = apps.get_model("tasks", "Judgement")
    for batch in _batches(Judgement.objects.only("id", source)):
        for judgement in batch:
            setattr(judgement, target, convert(getattr(judgement, source)))
        Judgement.objects.bulk_update(batch, [target])


def pack(apps, schema_editor):
    _convert(
        apps, schema_editor, sql=PACK_ON_POSTGRESQL, source="minhash", target="minhash_packed",
        convert=pack_values,
    )  # fmt: skip


def unpack(apps, schema_editor):
    _convert(
        apps, schema_editor, sql=UNPACK_ON_POSTGRESQL, source="minhash_packed",
        target="minhash", convert=unpack_values,
    )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0014_pair_outcome_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="judgement",
            name="minhash_packed",
            field=models.BinaryField(blank=True, default=b""),
        ),
        migrations.RunPython(pack, unpack),
        migrations.RemoveField(model_name="judgement", name="minhash"),
        migrations.RenameField(
            model_name="judgement", old_name="minhash_packed", new_name="minhash"
        ),
    ]
