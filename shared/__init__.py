"""What the services share, split by who depends on it.

- `shared.contracts`: the published contracts (event payloads, topics, roles, regions, ACLs).
  Depends on no other part of the project, so an outside system can read it alone.
- `shared.platform`: the delivery machinery every service runs on (Kafka, PostgreSQL, outbox,
  inbox, timers, HTTP edges, pages, unit of work). Business rules stay in each service.
- `shared.ntbctl`: the operators' command line. No service imports it.
"""
