# The gateway's image, for compose.yaml (and the simulator service, from the same build).
FROM node:22-slim
WORKDIR /app
ENV NODE_ENV=development
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build
# Development dependencies were needed for the build only.
RUN npm prune --omit=dev --no-audit --no-fund
USER node
EXPOSE 4000 9464
CMD ["node", "dist/main.js"]
