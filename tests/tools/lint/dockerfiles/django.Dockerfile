FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /code
RUN apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /code/
RUN pip install --no-cache-dir -r requirements.txt
COPY . /code/
RUN python manage.py collectstatic --noinput && echo `python --version`
RUN SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex())') python manage.py check --deploy
RUN addgroup --system app && adduser --system --group app && chown -R app:app /code
USER app
EXPOSE 8000
CMD gunicorn mysite.wsgi:application --bind 0.0.0.0:$PORT
