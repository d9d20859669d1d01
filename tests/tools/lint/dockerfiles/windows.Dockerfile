FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
WORKDIR C:\\app
RUN Invoke-WebRequest https://example.com/x.zip -OutFile x.zip | Out-Null
COPY app.exe .
CMD ["app.exe"]
