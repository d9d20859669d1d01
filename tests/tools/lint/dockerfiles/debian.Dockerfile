FROM debian:bookworm
RUN apt-get update
RUN apt-get install -y curl wget ca-certificates
RUN curl -fsSL https://example.com/key.gpg | gpg --dearmor > /usr/share/keyrings/ex.gpg
RUN wget https://example.com/tool.tar.gz && tar -xzf tool.tar.gz -C /opt
RUN cd /opt/tool && ./install.sh
ENTRYPOINT /opt/tool/bin/run
