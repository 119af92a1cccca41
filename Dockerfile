# The Marlin image: web (gunicorn) and Celery worker run from it; see docker-compose.yml.
FROM python:3.11-slim

# PYTHONPATH: BASE_DIR (templates/, static/, staticfiles/) is derived from where marlin/ is
# imported from, so the source tree in /app must win over the copy pip puts in site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=marlin.settings.base \
    MARLIN_REPO_CACHE_DIR=/var/lib/marlin/repos

# GitPython shells out to git at runtime (clones, diffs); coding agents and checks run in
# bubblewrap's sandbox (marlin/sandbox.py), with setpriv (util-linux) to drop privileges.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system marlin \
    && useradd --system --gid marlin --home-dir /app --shell /usr/sbin/nologin marlin \
    && mkdir -p /app /var/lib/marlin/repos /var/lib/marlin/evidence \
    && chown -R marlin:marlin /app /var/lib/marlin

WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY --chown=marlin:marlin . .
RUN pip install . \
    && rm -rf build ./*.egg-info

USER marlin

# Static files are built into the image (whitenoise serves them). The key is a throwaway used
# only by this step; the real one comes from the environment at runtime.
ARG DJANGO_SECRET_KEY=collectstatic-only-build-time-key-not-used-at-runtime
RUN DJANGO_SETTINGS_MODULE=marlin.settings.base DJANGO_SECRET_KEY="$DJANGO_SECRET_KEY" \
    python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["gunicorn", "marlin.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
