from __future__ import annotations

from django import template

from reviews.models import note_anchor

register = template.Library()


@register.simple_tag
def notes_at(notes: dict, turn_id: int, slot: str = "", field: str = "") -> list:
    """The review notes attached to one place: a turn, or one field of its judgement."""
    return notes.get(note_anchor(turn_id=turn_id, slot=slot, field=field), []) if notes else []


@register.filter
def duration(seconds: int | float | None) -> str:
    """Seconds as "1 h 05 min" / "4 min 10 s" for time on task and waiting times."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@register.simple_tag
def note_place(note, project) -> str:
    """Where a note applies, in words: "turn 1, Security of A" or "turn 2, preference"."""
    place = f"Turn {note.turn.number}"
    if not note.field:
        return place
    labels = {axis["key"]: axis["label"] for axis in project.rubric_axes}
    if note.slot:
        return f"{place}, {labels.get(note.field, note.field)} of {note.slot}"
    return f"{place}, {note.field}"
