"""A finished export's file as an HTTP download: the one answer the export page and the API
both give, so the two cannot drift (they once sent different content types)."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404

from reviews.models import ExportJob

CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def export_download_response(*, pk: int) -> FileResponse:
    """The file of export `pk` as an attachment; 404 unless the export has succeeded.
    Who may download is the caller's check (the page's decorator, the API's permission)."""
    job = get_object_or_404(ExportJob, pk=pk, status=ExportJob.Status.SUCCEEDED)
    return FileResponse(
        job.file.open("rb"),
        as_attachment=True,
        filename=job.filename,
        content_type=CONTENT_TYPES[job.extension],
    )
