"""The event runtime: the Faust app every bounded context runs on, each context's agents (the Kafka side of
its rules), consumer progress and metrics, and the topics on the broker."""
