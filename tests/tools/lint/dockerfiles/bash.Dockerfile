FROM ubuntu:22.04
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG RELEASE
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl=7.81.0-1ubuntu1.15 jq=1.6-2.1ubuntu3 \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL "https://api.github.com/repos/org/app/releases/$RELEASE" | jq -r '.assets[].browser_download_url' > /urls
RUN [[ -s /urls ]] && while read -r url; do curl -fsSLO $url; done < /urls
RUN mapfile -t files < <(ls /*.tgz) && echo ${files[@]}
RUN echo $((1 + 2)) && declare -A map && map[a]=1 && echo "${map[a]}"
WORKDIR /app
USER nobody
CMD ["bash"]
