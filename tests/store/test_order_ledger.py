"""The live order ledger on SQLite and PostgreSQL: write-ahead intents, monotonic updates,
executions stored once with one position row each, fenced by the run's lease, and migration
0006 bringing a paper run's journal along."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from bot.core.events import Fill, Order
from bot.core.ids import order_link_id
from bot.store import Store
from bot.store.faults import LeaseLostError
from bot.store.lease import new_owner
from bot.store.ledger import Execution, LastExecution, PositionAfter
from bot.store.migrate import alembic_config

RUN = "1ive0123456789ab"
T = 1_704_070_800_000
HOUR = 3_600_000
OWNER = new_owner()


@pytest.fixture
def live(store: Store) -> str:
    """A live run in ``store``, leased to ``OWNER``."""
    store.create_run(
        run_id=RUN, kind="live", strategy="momentum", symbols=["BTCUSDT", "ETHUSDT"],
        interval="1h", config={}, code_version="test", started_at=T,
    )  # fmt: skip
    store.acquire_lease(RUN, OWNER, ttl_s=60)
    return RUN


@pytest.fixture
def reader(db_url: str) -> Iterator[sa.Engine]:
    """A connection pool of its own: what another process would see."""
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def intent(store: Store, symbol: str = "BTCUSDT", *, leg: int = 0, attempt: int = 0,
           time: int = T, qty: float = 0.5, **extra) -> dict:  # fmt: skip
    link_id = order_link_id(RUN, time, f"{symbol}/{leg}", attempt)
    return store.write_order_intent(
        RUN, link_id=link_id, symbol=symbol, side=extra.pop("side", "Buy"), qty=qty,
        order_type=extra.pop("order_type", "Market"), decision_time=time, leg=leg,
        attempt=attempt, reason="rebalance", reduce_only=extra.pop("reduce_only", False),
        created_at=extra.pop("created_at", time + 5), lease_owner=OWNER, **extra,
    )  # fmt: skip


def fill(exec_id: str, symbol: str, time: int, qty: float, price: float, *,
         link_id: str | None = None, exec_type: str = "Trade") -> Fill:  # fmt: skip
    fee = abs(qty) * price * 0.00055
    return Fill(exec_id, link_id, symbol, time, qty, price, fee, exec_type, -qty * price - fee)


# -- write-ahead intents -----------------------------------------------------------------------
def test_an_intent_is_committed_when_the_call_returns(store: Store, live: str, reader) -> None:
    row = intent(store, order_type="Limit", price=42_000.5, reduce_only=True)
    with reader.connect() as conn:  # another connection, no waiting: it is committed
        seen = conn.execute(
            sa.text("SELECT status, qty, price, reduce_only, created_at, updated_at, order_id "
                    "FROM orders WHERE order_link_id = :link"),
            {"link": row["order_link_id"]},
        ).one()  # fmt: skip
    assert tuple(seen) == ("Unknown", 0.5, 42_000.5, True, T + 5, T + 5, None)
    assert row == store.order_by_link_id(row["order_link_id"])
    assert row["run_id"] == live and row["cum_exec_qty"] == 0.0 and row["avg_price"] is None
    assert (row["leg"], row["attempt"], row["order_type"]) == (0, 0, "Limit")


def test_writing_an_intent_twice_keeps_the_first(store: Store, live: str) -> None:
    first = intent(store)
    store.update_order(first["order_link_id"], status="New", order_id="ex-1",
                       updated_at=T + 9, lease_owner=OWNER)  # fmt: skip
    again = intent(store, qty=0.7, created_at=T + 100)  # a restart recomputed the order
    assert again["qty"] == 0.5 and again["status"] == "New" and again["order_id"] == "ex-1"
    assert again["created_at"] == T + 5 and again["updated_at"] == T + 9
    assert len(store.order_ledger(live)) == 1


def test_a_link_id_of_another_run_is_refused(store: Store, live: str) -> None:
    row = intent(store)
    store.create_run(run_id="other", kind="live", strategy="x", symbols=["BTCUSDT"],
                     interval="1h", config={}, code_version="t", started_at=T)  # fmt: skip
    store.acquire_lease("other", OWNER, ttl_s=60)
    with pytest.raises(ValueError, match="belongs to run"):
        store.write_order_intent(
            "other", link_id=row["order_link_id"], symbol="BTCUSDT", side="Buy", qty=0.5,
            order_type="Market", decision_time=T, leg=0, attempt=0, reason="rebalance",
            reduce_only=False, created_at=T, lease_owner=OWNER,
        )  # fmt: skip
    assert store.order_ledger("other") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"side": "Long"}, "side"),
        ({"qty": 0.0}, "qty"),
        ({"qty": float("nan")}, "qty"),
        ({"order_type": "Limit"}, "limit order needs"),
        ({"price": 1.0}, "market order has no price"),
        ({"leg": -1}, "leg and attempt"),
    ],
)
def test_a_bad_intent_writes_nothing(store: Store, live: str, change: dict, message: str):
    with pytest.raises(ValueError, match=message):
        intent(store, **change)
    assert store.order_ledger(live) == []


# -- monotonic updates -------------------------------------------------------------------------
def test_status_only_moves_forward(store: Store, live: str) -> None:
    link = intent(store, qty=1.0)["order_link_id"]

    def update(status: str, at: int, **fields) -> bool:
        return store.update_order(link, status=status, updated_at=at, lease_owner=OWNER,
                                  **fields)  # fmt: skip

    assert update("New", T + 10, order_id="ex-1")
    assert not update("Unknown", T + 11)  # a look-up that timed out says nothing new
    assert update("PartiallyFilled", T + 20, cum_exec_qty=0.4, avg_price=100.0)
    assert not update("New", T + 12, cum_exec_qty=0.2)  # late, reordered
    assert update("PartiallyFilled", T + 30, cum_exec_qty=0.6, avg_price=101.0)
    assert update("Filled", T + 40, cum_exec_qty=1.0, avg_price=102.0)
    assert not update("New", T + 50)  # a late acknowledgement
    assert not update("PartiallyFilled", T + 51, cum_exec_qty=0.6, avg_price=101.0)
    assert not update("Filled", T + 52, cum_exec_qty=1.0, avg_price=102.0)  # doubled
    assert not update("Cancelled", T + 53, order_id="ex-2")
    row = store.order_by_link_id(link)
    assert (row["status"], row["cum_exec_qty"], row["avg_price"]) == ("Filled", 1.0, 102.0)
    assert row["order_id"] == "ex-1" and row["updated_at"] == T + 40
    assert store.unresolved_orders(live) == []


def test_a_final_status_stays_and_executed_quantity_never_decreases(store: Store, live: str):
    link = intent(store, qty=1.0)["order_link_id"]

    def update(status: str, **fields) -> bool:
        return store.update_order(link, status=status, updated_at=T + 9, lease_owner=OWNER,
                                  **fields)  # fmt: skip

    assert update("Cancelled", cum_exec_qty=0.3, avg_price=99.0)  # IOC: part filled
    assert not update("PartiallyFilled", cum_exec_qty=0.1)
    assert not update("Filled", cum_exec_qty=0.3)
    row = store.order_by_link_id(link)
    assert (row["status"], row["cum_exec_qty"], row["avg_price"]) == ("Cancelled", 0.3, 99.0)


def test_a_rejection_keeps_its_code_and_reason(store: Store, live: str) -> None:
    link = intent(store)["order_link_id"]
    assert store.update_order(link, status="Rejected", reject_code="110007",
                              reject_reason="ab not enough for new order", updated_at=T + 7,
                              lease_owner=OWNER)  # fmt: skip
    assert not store.update_order(link, status="New", reject_code="0", updated_at=T + 8,
                                  lease_owner=OWNER)  # fmt: skip
    # a late message that names the exchange's id adds it; the status stays
    assert store.update_order(link, status="New", order_id="ex-9", updated_at=T + 8,
                              lease_owner=OWNER)  # fmt: skip
    row = store.order_by_link_id(link)
    assert (row["status"], row["order_id"], row["updated_at"]) == ("Rejected", "ex-9", T + 8)
    assert (row["reject_code"], row["reject_reason"]) == ("110007", "ab not enough for new order")


def test_an_update_for_an_order_never_written_is_an_error(store: Store, live: str) -> None:
    with pytest.raises(LookupError, match="no order"):
        store.update_order("nope", status="New", updated_at=T, lease_owner=OWNER)
    with pytest.raises(ValueError, match="order status"):
        store.update_order(intent(store)["order_link_id"], status="Done", updated_at=T,
                           lease_owner=OWNER)  # fmt: skip


def test_the_status_column_refuses_unknown_statuses(store: Store, live: str) -> None:
    link = intent(store)["order_link_id"]
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET status = 'Done' WHERE order_link_id = :link"),
                     {"link": link})  # fmt: skip


# -- executions --------------------------------------------------------------------------------
def test_executions_are_stored_once_each_with_its_position(store: Store, live: str) -> None:
    link = intent(store, qty=1.0)["order_link_id"]
    first = Execution(fill("e1", "BTCUSDT", T + HOUR, 0.4, 100.0, link_id=link),
                      PositionAfter(0.4, 100.0))  # fmt: skip
    second = Execution(fill("e2", "BTCUSDT", T + HOUR, 0.6, 101.0, link_id=link),
                       PositionAfter(1.0, 100.6))  # same symbol, same time  # fmt: skip
    funding = Execution(fill("f1", "BTCUSDT", T + 2 * HOUR, 1.0, 100.0, exec_type="Funding"))
    assert store.record_executions(live, [first, second, first], lease_owner=OWNER) == [
        first, second
    ]  # fmt: skip
    assert store.record_executions(live, [second, funding, first], lease_owner=OWNER) == [
        funding
    ]  # fmt: skip
    assert [f["exec_id"] for f in store.fills(live)] == ["e1", "e2", "f1"]
    assert store.position_changes(live) == [
        {"time": T + HOUR, "symbol": "BTCUSDT", "qty": 0.4, "avg_price": 100.0, "exec_id": "e1"},
        {"time": T + HOUR, "symbol": "BTCUSDT", "qty": 1.0, "avg_price": 100.6, "exec_id": "e2"},
    ]  # fmt: skip
    assert store.latest_positions(live) == {
        "BTCUSDT": {"time": T + HOUR, "qty": 1.0, "avg_price": 100.6, "exec_id": "e2"}
    }
    assert store.last_execution(live) == LastExecution(T + 2 * HOUR, "f1")


def test_the_last_execution_is_by_exchange_time(store: Store, live: str) -> None:
    assert store.last_execution(live) is None
    late = Execution(fill("b", "ETHUSDT", T + HOUR, 1.0, 10.0), PositionAfter(1.0, 10.0))
    early = Execution(fill("a", "ETHUSDT", T, 1.0, 10.0), PositionAfter(2.0, 10.0))
    store.record_executions(live, [late], lease_owner=OWNER)
    store.record_executions(live, [early], lease_owner=OWNER)  # recovered after a gap
    assert store.last_execution(live) == LastExecution(T + HOUR, "b")


def test_an_unacknowledged_commit_retried_still_reports_its_executions(store, live):
    """The commit went through, then the connection dropped: the retry finds the executions
    stored, and they are still the ones this call stored (the caller must book them)."""
    real = store._retry
    dropped = sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    def dropping_once(operation, what):
        calls = []

        def attempt():
            result = operation()  # commits
            calls.append(what)
            if len(calls) == 1:
                raise dropped
            return result

        return real(attempt, what)

    store._retry = dropping_once
    execution = Execution(fill("e1", "BTCUSDT", T, 0.1, 100.0), PositionAfter(0.1, 100.0))
    assert store.record_executions(live, [execution], lease_owner=OWNER) == [execution]
    link = intent(store)["order_link_id"]
    assert store.update_order(link, status="New", updated_at=T + 1, lease_owner=OWNER)
    store._retry = real
    assert len(store.fills(live)) == 1 and store.order_by_link_id(link)["status"] == "New"


# -- queries -----------------------------------------------------------------------------------
def test_unresolved_orders_and_orders_of_a_decision(store: Store, live: str) -> None:
    legs = [intent(store, leg=leg, attempt=attempt)["order_link_id"]
            for leg, attempt in ((1, 0), (0, 1), (0, 0))]  # fmt: skip
    other = intent(store, "ETHUSDT")["order_link_id"]
    store.update_order(legs[1], status="Filled", cum_exec_qty=0.5, updated_at=T + 9,
                       lease_owner=OWNER)  # fmt: skip
    store.update_order(other, status="New", updated_at=T + 9, lease_owner=OWNER)
    mine = store.orders_for_decision(live, T, "BTCUSDT")
    assert [(o["leg"], o["attempt"]) for o in mine] == [(0, 0), (0, 1), (1, 0)]
    assert store.orders_for_decision(live, T + HOUR, "BTCUSDT") == []
    assert [(o["order_link_id"], o["status"]) for o in store.unresolved_orders(live)] == [
        (legs[0], "Unknown"), (legs[2], "Unknown"), (other, "New")
    ]  # fmt: skip


def test_drifts_are_events_recorded_once(store: Store, live: str) -> None:
    assert store.record_drift(live, time=T, subject="position:BTCUSDT", store=0.5,
                              exchange=0.7, action="halted", lease_owner=OWNER)  # fmt: skip
    assert not store.record_drift(live, time=T, subject="position:BTCUSDT", store=0.5,
                                  exchange=0.7, action="halted", lease_owner=OWNER)  # fmt: skip
    store.record_drift(live, time=T, subject="wallet", store=1.0, exchange=1.25,
                       action="recorded", lease_owner=OWNER)  # fmt: skip
    assert store.drifts(live) == [
        {"time": T, "subject": "position:BTCUSDT", "store": 0.5, "exchange": 0.7,
         "action": "halted"},
        {"time": T, "subject": "wallet", "store": 1.0, "exchange": 1.25, "action": "recorded"},
    ]  # fmt: skip


# -- the lease fences every ledger write ------------------------------------------------------
def test_ledger_writes_are_refused_once_the_lease_is_lost(store: Store, live: str) -> None:
    link = intent(store)["order_link_id"]
    store.acquire_lease(live, new_owner(), ttl_s=60, force=True)  # another daemon took over
    with pytest.raises(LeaseLostError):
        intent(store, "ETHUSDT")
    with pytest.raises(LeaseLostError):
        store.update_order(link, status="New", updated_at=T + 1, lease_owner=OWNER)
    with pytest.raises(LeaseLostError):
        store.record_executions(
            live, [Execution(fill("e1", "BTCUSDT", T, 0.5, 1.0))], lease_owner=OWNER
        )
    with pytest.raises(LeaseLostError):
        store.record_drift(live, time=T, subject="wallet", store=1, exchange=2,
                           action="none", lease_owner=OWNER)  # fmt: skip
    assert [o["status"] for o in store.order_ledger(live)] == ["Unknown"]
    assert store.fills(live) == [] and store.events(live) == []


# -- the paper journal beside the ledger -------------------------------------------------------
def test_journal_keeps_a_position_row_per_fill_and_rebooking_adds_none(store, run_id) -> None:
    def book(journal, exec_id: str, qty: float, position: float) -> None:
        journal.record_fill(fill(exec_id, "BTCUSDT", T, qty, 100.0))
        journal.record_position(T, "BTCUSDT", position, 100.0)

    journal = store.journal(run_id)
    book(journal, "x1", 0.2, 0.2)
    book(journal, "x2", 0.3, 0.5)  # a second execution of the symbol at the same time
    journal.flush()
    restarted = store.journal(run_id)
    book(restarted, "x2", 0.3, 0.5)  # re-booked after a restart
    restarted.flush()
    assert [(p["qty"], p["exec_id"]) for p in store.position_changes(run_id)] == [
        (0.2, "x1"), (0.5, "x2")
    ]  # fmt: skip


def test_journal_fills_a_paper_order_in_the_ledger_columns(store: Store, run_id: str) -> None:
    order = Order(order_link_id(run_id, T, "BTCUSDT"), "BTCUSDT", -0.25, T)
    journal = store.journal(run_id)
    journal.record_orders([order])
    journal.flush()
    journal.record_fill(fill("p1", "BTCUSDT", T + HOUR, -0.25, 99.5, link_id=order.link_id))
    journal.flush()
    (row,) = store.order_ledger(run_id)
    assert (row["status"], row["cum_exec_qty"], row["avg_price"]) == ("Filled", 0.25, 99.5)
    assert (row["created_at"], row["updated_at"], row["side"]) == (T, T + HOUR, "Sell")


def test_journal_never_overrides_the_exchange_status(store: Store, live: str) -> None:
    link = intent(store, qty=1.0)["order_link_id"]
    store.update_order(link, status="PartiallyFilled", order_id="ex-1", cum_exec_qty=0.4,
                       updated_at=T + 9, lease_owner=OWNER)  # fmt: skip
    journal = store.journal(live, lease_owner=OWNER)
    journal.record_orders([Order(link, "BTCUSDT", 1.0, T)])  # the engine journals it too
    journal.flush()
    journal.record_fill(fill("e1", "BTCUSDT", T + HOUR, 0.4, 100.0, link_id=link))
    journal.flush()
    row = store.order_by_link_id(link)
    assert (row["status"], row["cum_exec_qty"]) == ("PartiallyFilled", 0.4)


# -- migration 0006 ----------------------------------------------------------------------------
def test_migrating_a_paper_journal_keeps_its_rows(db_url: str) -> None:
    command.upgrade(alembic_config(db_url), "0005")
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    a, b, c = (order_link_id("paper", T, s) for s in ("A", "B", "C"))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO runs (id, kind, strategy, symbols, interval, config, code_version, "
            "started_at, status) VALUES ('paper', 'paper', 's', '[]', '1h', '{}', 'v', 0, "
            "'stopped')"))  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO orders (run_id, order_link_id, symbol, side, qty, order_type,"
                    " decision_time, reason, status) VALUES ('paper', :link, :symbol, 'Buy',"
                    " 2.0, 'Market', :time, 'rebalance', :status)"),
            [{"link": a, "symbol": "A", "time": T, "status": "Filled"},
             {"link": b, "symbol": "B", "time": T, "status": "Cancelled"},
             {"link": c, "symbol": "C", "time": T + HOUR, "status": "New"}],
        )  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO fills (run_id, exec_id, order_link_id, symbol, side, qty, "
                    "price, fee, exec_type, cash_flow, realized_pnl, time) VALUES ('paper', "
                    ":exec, :link, 'A', 'Buy', :qty, :price, 0.1, :type, 0.0, 0.0, :time)"),
            [{"exec": "a1", "link": a, "qty": 1.5, "price": 10.0, "type": "Trade", "time": T},
             {"exec": "a2", "link": a, "qty": 0.5, "price": 14.0, "type": "Trade", "time": T},
             {"exec": "fa", "link": None, "qty": 2.0, "price": 12.0, "type": "Funding",
              "time": T + HOUR}],
        )  # fmt: skip
        conn.execute(  # the old key kept only the first of a1's and a2's positions
            sa.text("INSERT INTO positions (run_id, time, symbol, qty, avg_price) VALUES "
                    "('paper', :time, :symbol, :qty, 10.0)"),
            [{"time": T, "symbol": "A", "qty": 1.5}, {"time": T, "symbol": "Z", "qty": 3.0}],
        )  # fmt: skip
    engine.dispose()

    with Store(db_url) as store:
        rows = {o["order_link_id"]: o for o in store.order_ledger("paper")}
        assert [o["order_link_id"] for o in store.orders("paper")] == [a, b, c]
        assert {k: (o["status"], o["cum_exec_qty"], o["avg_price"]) for k, o in rows.items()} == {
            a: ("Filled", 2.0, 11.0), b: ("Cancelled", 0.0, None), c: ("New", 0.0, None)
        }  # fmt: skip
        assert {(o["created_at"], o["updated_at"]) for o in rows.values()} == {
            (T, T), (T + HOUR, T + HOUR)
        }  # fmt: skip
        assert {(o["leg"], o["attempt"], o["reduce_only"], o["order_id"]) for o in rows.values()
                } == {(0, 0, False, None)}  # fmt: skip
        assert [(p["symbol"], p["exec_id"]) for p in store.position_changes("paper")] == [
            ("A", "a1"), ("Z", "")
        ]  # fmt: skip
        resumed = store.journal("paper")  # the run resumes and re-books both fills at T
        for exec_id, qty, position in (("a1", 1.5, 1.5), ("a2", 0.5, 2.0)):
            resumed.record_fill(fill(exec_id, "A", T, qty, 10.0, link_id=a))
            resumed.record_position(T, "A", position, 11.0)
        resumed.flush()
        assert [(p["symbol"], p["exec_id"], p["qty"]) for p in store.position_changes("paper")
                ] == [("A", "a1", 1.5), ("Z", "", 3.0), ("A", "a2", 2.0)]  # fmt: skip
        assert len(store.fills("paper")) == 3
