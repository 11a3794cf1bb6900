# Hydra: multi-stage image. The build stage compiles `hydra` with a Swift toolchain image; the
# runtime stage is slim Debian with only the shared libraries the binary needs, a non-root user,
# models from /models (or the built-in default). See Deploy/README.md.
#
#   podman build -t hydra .                                    # with the official Swift image
#   make container        # offline: local base and toolchain images, packages from a git mirror (scripts/container.sh)
ARG SWIFT_IMAGE=docker.io/library/swift:6.1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
# Where Swift packages come from when github.com is not reachable: a folder of bare git mirrors.
ARG GIT_MIRROR=
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libxnnpack-dev libpthreadpool-dev libuv1-dev libhttp-parser-dev libturbojpeg0-dev libpng-dev zlib1g-dev git \
 && rm -rf /var/lib/apt/lists/*
# A plain path (not file://) so that git also finds OWNER/NAME.git for a URL without the suffix.
RUN if [ -n "$GIT_MIRROR" ]; then git config --global url."${GIT_MIRROR}/".insteadOf https://github.com/; fi
WORKDIR /src
COPY Package.swift Package.resolved ./
COPY Sources ./Sources
COPY Tests ./Tests
# The commit hydra_build_info reports (make container passes it; the image has no .git).
ARG HYDRA_COMMIT=
# Debug info out, symbols kept: crash backtraces still name functions.
RUN swift build -c release --product hydra --static-swift-stdlib \
 && mkdir -p /out \
 && if [ -n "$HYDRA_COMMIT" ]; then echo "$HYDRA_COMMIT" > /out/hydra-build.txt; fi \
 && cp .build/release/hydra /out/ \
 && strip --strip-debug /out/hydra \
 && cp -r .build/release/Hydra_HydraEngine.resources .build/release/Hydra_HydraServer.resources /out/

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libxnnpack0 libpthreadpool0 libcpuinfo0 libuv1 libhttp-parser2.9 libturbojpeg0 libpng16-16 zlib1g libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin hydra \
 && mkdir /models && chown 10001:10001 /models
COPY --from=build /out/ /opt/hydra/
# Every flag of `hydra serve` is also an environment variable (HYDRA_WORKERS, HYDRA_QUEUE_SIZE, ...).
ENV HYDRA_HOST=0.0.0.0 \
    HYDRA_PORT=8080 \
    HYDRA_MODEL_DIR=/models
USER 10001:10001
EXPOSE 8080
# hydra handles SIGTERM itself: /readyz turns 503, work drains, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/hydra/hydra", "serve"]
