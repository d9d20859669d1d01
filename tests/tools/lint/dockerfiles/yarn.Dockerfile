FROM node:20 AS deps
WORKDIR /app
COPY package.json yarn.lock ./
RUN yarn install --frozen-lockfile
FROM node:20
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
RUN yarn install && yarn cache clean
RUN wget -q https://example.com/a && curl -O https://example.com/b
