FROM ubuntu:latest
MAINTAINER Jane Doe <jane@example.com>
LABEL maintainer="jane@example.com" com.docker.thing="x" Version=1
ENV HOME=/root PATH=$HOME/bin:$PATH
ENV DB_PASSWORD=changeme
ARG GITHUB_TOKEN
WORKDIR app
RUN sudo apt-get install -y vim
