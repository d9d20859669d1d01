FROM centos:7
RUN yum install httpd && yum clean all
RUN yum install -y php-7.4 mod_ssl
EXPOSE 80 443
CMD ["/usr/sbin/httpd", "-D", "FOREGROUND"]
