# syntax=docker/dockerfile:1
#
# pgseal image: `docker build -t pgseal .` (the last stage, runtime, is the
# default target). docker-compose.yml also builds the init stage for its
# one-shot setup. See docs/operations.md.

# Build. cgo is required: pg_query_go compiles PostgreSQL's own parser (C).
# Builder and runtime are both Debian 12, so the binary's glibc matches.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/pgseal/pgseal/internal/cli.Version=${VERSION}" \
      -o /out/pgseal ./cmd/pgseal

# One-shot setup for docker-compose.yml: certificates (openssl) and a
# keystore (pgseal keys). It needs a shell, so it is not the runtime image.
FROM debian:bookworm-slim AS init
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/pgseal /usr/local/bin/pgseal
COPY examples/compose/init.sh /usr/local/bin/pgseal-compose-init
ENTRYPOINT ["/bin/sh", "/usr/local/bin/pgseal-compose-init"]

# Runtime: glibc and libgcc, CA certificates, no shell, no package manager;
# runs as the unprivileged user nonroot (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/pgseal /usr/local/bin/pgseal
USER 65532:65532
# 6432: clients; 9632: /metrics, /healthz, /readyz (with --metrics-listen).
EXPOSE 6432 9632
ENTRYPOINT ["/usr/local/bin/pgseal"]
CMD ["serve"]
