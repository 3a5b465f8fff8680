"""What runs bread: the `bread` command, its supervisor, the local Kafka broker, and the generators of the
Kubernetes manifests and the README's tables."""
