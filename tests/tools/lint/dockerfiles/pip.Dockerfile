FROM python:3.11
RUN pip install flask==3.0.0 requests
RUN python -m pip install --upgrade pip
RUN pipx install poetry
FROM python:3.11-slim
RUN pip install --no-cache-dir uvicorn==0.29.0
RUN pip3 install numpy
