FROM node:20
ONBUILD COPY package.json /app/
ONBUILD RUN npm install express
ONBUILD RUN cd /app && npm install
