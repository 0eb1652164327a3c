"""TransactionScope: writes deferred to the end of a transaction, flushed once each, or dropped."""

from shared.platform.consumer import TransactionScope


async def test_deferred_items_are_flushed_once_per_key_in_registration_order():
    """Two handlers appending to one key give one flush with both items; keys flush in the order first used."""
    calls: list[tuple[str, list]] = []

    async def journal(conn, items):
        calls.append(("journal", list(items)))

    async def deliveries(conn, items):
        calls.append(("deliveries", list(items)))

    scope = TransactionScope()
    scope.deferred("journal", journal).append(1)
    scope.deferred("deliveries", deliveries).append("a")
    scope.deferred("journal", journal).append(2)
    await scope.flush(conn=None)
    await scope.flush(conn=None)  # nothing left: no second write
    assert calls == [("journal", [1, 2]), ("deliveries", ["a"])]


async def test_a_flush_may_defer_more_and_discard_drops_pending_items():
    """Writes deferred while flushing (e.g. an outbox row) are flushed too; discarded ones never are."""
    calls: list[str] = []
    scope = TransactionScope()

    async def outbox(conn, items):
        calls.extend(items)

    async def rows(conn, items):
        scope.deferred("outbox", outbox).append("event")

    scope.deferred("rows", rows).append("row")
    await scope.flush(conn=None)
    assert calls == ["event"]
    scope.deferred("rows", rows).append("rejected")
    scope.discard()
    await scope.flush(conn=None)
    assert calls == ["event"]


async def test_emitted_rows_are_written_first_in_order_once_and_dropped_on_discard():
    """The outbox rows of emitted events go before every other deferred write (as when each was written at
    once), even when a deferred write was registered earlier; what a flush writes to the outbox comes after."""
    calls: list[tuple[str, list]] = []

    async def outbox(conn, rows):
        calls.append(("outbox", list(rows)))

    async def deliveries(conn, items):
        calls.append(("deliveries", list(items)))

    scope = TransactionScope()
    scope.deferred("deliveries", deliveries).append("a")
    scope.emitted(outbox).append("event-1")
    scope.emitted(outbox).append("event-2")
    await scope.flush(conn=None)
    await scope.flush(conn=None)
    assert calls == [("outbox", ["event-1", "event-2"]), ("deliveries", ["a"])]
    scope.emitted(outbox).append("rejected")
    scope.discard()
    await scope.flush(conn=None)
    assert calls == [("outbox", ["event-1", "event-2"]), ("deliveries", ["a"])]
