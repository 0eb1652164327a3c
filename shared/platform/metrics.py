"""Prometheus metrics of one service, in a registry of its own (tests run several services per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"service": service}
        self.consumed = Counter(
            "ntb_messages_consumed", "Kafka records received by consumers", ["consumer", "topic"],
            registry=self.registry,
        )
        self.handled = Counter(
            "ntb_messages_handled",
            "Records handled, by outcome (applied, duplicate, dead_lettered)",
            ["consumer", "outcome"], registry=self.registry,
        )
        # Per consumed topic: consumed = applied + duplicate + dead_lettered, nothing else.
        self.records = Counter(
            "ntb_consumer_records", "Kafka records a consumer finished, by topic and outcome "
            "(applied, duplicate, dead_lettered)", ["consumer", "topic", "outcome"], registry=self.registry,
        )
        self.lag = Gauge(
            "ntb_consumer_lag", "Records on the partition after the consumer's committed offset",
            ["consumer", "topic", "partition"], registry=self.registry,
        )
        self.stalled = Gauge(
            "ntb_consumer_stalled", "1 while the consumer has lag on the partition and committed nothing for "
            "consumer_stall_seconds", ["consumer", "topic", "partition"], registry=self.registry,
        )
        self.failures = Counter(
            "ntb_handler_failures", "Handler attempts that failed (transient: retried; error: counted toward DLQ)",
            ["consumer", "kind"], registry=self.registry,
        )
        self.latency = Histogram(
            "ntb_handler_seconds", "Time from receiving a record to its outcome", ["consumer"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.outbox_lag = Gauge("ntb_outbox_lag", "Outbox rows not yet published", registry=self.registry)
        self.outbox_published = Counter("ntb_outbox_published", "Outbox rows published", registry=self.registry)
        self.outbox_dead = Counter("ntb_outbox_dead_lettered", "Outbox rows Kafka refused, set aside in outbox_dead",
                                   registry=self.registry)
        # Read at scrape time (Runtime.metrics_exposition): current even while the relay cannot publish.
        self.outbox_oldest_age = Gauge("ntb_outbox_oldest_age_seconds",
                                       "Age of the oldest outbox row not yet published (0 when none waits)",
                                       registry=self.registry)
        self.outbox_set_aside = Gauge("ntb_outbox_set_aside", "Outbox rows in outbox_dead, waiting for an operator",
                                      registry=self.registry)
        self.timers_fired = Counter("ntb_timers_fired", "Durable timers fired", ["kind"], registry=self.registry)
        self.deliveries = Counter(
            "ntb_deliveries", "Notification deliveries reaching a status", ["channel", "status"],
            registry=self.registry,
        )
        self.info = Gauge("ntb_service_info", "Constant 1, labelled with the service", ["service"],
                          registry=self.registry)
        self.info.labels(**labels).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
