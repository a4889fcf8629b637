# The image of the app, the task worker and the init service (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
# gunicorn (pinned in requirements.txt) serves the app; development uses runserver.
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files live in the image, not in the var/ volume, so each image serves its own.
# They are collected with the production storage (hashed names, gzip copies, a manifest);
# the placeholder secret and host only let production settings load: nothing is signed.
ENV STATIC_ROOT=/app/staticfiles
RUN AGIRA_ENV=production SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "agira.wsgi:application", "--bind", "0.0.0.0:8000"]
