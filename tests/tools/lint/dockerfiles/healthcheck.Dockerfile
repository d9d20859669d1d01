FROM nginx:1.25
HEALTHCHECK --interval=30s CMD curl -f http://localhost/
HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]
CMD ["nginx"]
CMD ["nginx", "-g", "daemon off;"]
ENTRYPOINT ["/docker-entrypoint.sh"]
ENTRYPOINT ["/entry.sh"]
EXPOSE 70000
