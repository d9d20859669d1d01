FROM busybox:1.36
ADD app.tar.gz /opt/
ADD config.json /etc/app/
ADD https://example.com/file.txt /tmp/
COPY dist.tar /tmp/
RUN tar -xf /tmp/dist.tar -C /opt
