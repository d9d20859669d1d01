FROM opensuse/leap:15.5
RUN zypper refresh && zypper install -y apache2 && zypper clean
RUN zypper install vim
RUN zypper dup -y
