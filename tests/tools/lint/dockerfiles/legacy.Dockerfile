FROM ubuntu:22.04
MAINTAINER ops team <ops@example.com>
ENV DEBIAN_FRONTEND noninteractive
RUN apt-get update && apt-get install -y wget unzip && apt-get clean
RUN (cd /tmp && wget -q https://example.com/tool.zip | cat) && unzip /tmp/tool.zip -d /opt
RUN echo "built on `date | tr -s ' '`" > /etc/build-info
RUN if [ $HOSTNAME == "builder" ]; then echo yes; fi
RUN source /etc/os-release && echo $ID
RUN cd /opt/tool && ./install.sh
ADD config.tar.gz /etc/tool/
ADD settings.json /etc/tool/settings.json
RUN useradd tool && chown -R tool /opt/tool
CMD /opt/tool/bin/run --config /etc/tool/settings.json
