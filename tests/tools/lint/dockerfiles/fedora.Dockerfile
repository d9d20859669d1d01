FROM fedora:39
RUN dnf install -y nginx && dnf clean all
RUN dnf -y upgrade
RUN microdnf install python3
HEALTHCHECK CMD curl -f http://localhost/ || exit 1
