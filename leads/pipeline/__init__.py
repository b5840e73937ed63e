"""The pipeline: the wire contract (events), the stages, and the transports that hand them
batches (the Kafka consumer loop and relay, the in-process bus)."""
