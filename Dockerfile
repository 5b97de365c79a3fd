# Images of convox-build-action.
#
# GitHub builds this file for the container action (action.yml: runs.using
# docker) with `docker build` and no --target: the action's stage must stay
# the LAST stage. Other images (the webhook server) add their own stages
# above it, copying from `build`, and are built with --target:
#
#   docker build -t convox-build-action .              # the action
#   docker build --target webhook -t convox-build-webhook .
#
# Every image is a static Go binary on an empty base: no shell, no package
# manager; CA certificates and a /tmp come from the build stage.

ARG GO_VERSION=1.26.8

# build: the static binaries and the files the final images copy.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
RUN go build -trimpath -ldflags="-s -w" -o /out/convox-build-action ./cmd/action \
 && go build -trimpath -ldflags="-s -w" -o /out/convox-build-webhook ./cmd/webhook \
 && mkdir -m 1777 /out/tmp \
 && mkdir -m 0700 /out/data && chown 65532:65532 /out/data

# webhook: the GitHub App server (README, "Webhook server"). It runs as an
# unprivileged user; its SQLite database and the sources it builds live in
# /data (a volume), unless DATABASE_URL names a PostgreSQL server.
FROM scratch AS webhook
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tmp /tmp
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build /out/convox-build-webhook /convox-build-webhook
ENV TMPDIR=/tmp HOME=/data DATA_DIR=/data LISTEN_ADDR=:8080
USER 65532:65532
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/convox-build-webhook"]

# action: the GitHub container action. The runner mounts the workspace,
# the file-command directory and the Docker socket, and passes INPUT_*.
FROM scratch AS action
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tmp /tmp
COPY --from=build /out/convox-build-action /convox-build-action
ENV TMPDIR=/tmp
ENTRYPOINT ["/convox-build-action"]
