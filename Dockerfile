# The image a monitor's CronJob runs (`monitor_image` on the kubernetes
# provider): the mlops binary, whose `mlops drift` command computes the
# scores and writes them to the termination message.
#
#   docker build -t registry.example.com/mlops:0.1.0 . && docker push registry.example.com/mlops:0.1.0
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mlops

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/mlops /usr/local/bin/mlops
USER 65532:65532
ENTRYPOINT ["mlops"]
