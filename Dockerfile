# A small static image whose entrypoint is `ripcord`:
#   docker build -t ripcord .
#   docker run --rm -v "$PWD:/work" -w /work ripcord lint --format sarif
#   docker run --rm -e RIPCORD_URL=postgres://app@db/app -v "$PWD:/work" -w /work ripcord status
# The build stage links against musl (rusqlite's bundled SQLite and ring's C parts are
# compiled with musl-gcc), so the binary needs no libc; the final stage is distroless
# (CA certificates, /tmp for drill's scratch files, a non-root user, no shell).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p ripcord-cli \
 && strip target/x86_64-unknown-linux-musl/release/ripcord

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/ripcord /usr/local/bin/ripcord
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/ripcord"]
CMD ["--help"]
