"""The PostgreSQL store against a real server: the contract, plus schemas, migrations, concurrency,
connection failures and URLs.

A throwaway cluster is started once per test run (see ``servers.py``); each test gets a schema of
its own. Without the server binaries these tests are skipped with a message saying what to install.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("psycopg", reason='needs the postgres extra: pip install "dwf[postgres]"')
pytest.importorskip("psycopg_pool", reason='needs the postgres extra: pip install "dwf[postgres]"')

import psycopg
from contract import (
    StoreContract,
    check_sync_engine_round_trip,
    make_entry,
    make_record,
    running,
    step,
)
from servers import free_port, postgres_server, with_database, with_options

from dwf.errors import ConfigurationError, StoreError
from dwf.storage import Store, open_store
from dwf.storage.base import Status
from dwf.storage.postgres import PostgresStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The base URL of the session's throwaway PostgreSQL server."""
    with postgres_server() as url:
        yield url


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def store_url(postgres_url: str, schema: str) -> str:
    return with_options(postgres_url, schema=schema)


class TestPostgresStore(StoreContract):
    @pytest.fixture
    async def store(self, store_url: str) -> AsyncIterator[Store]:
        store = PostgresStore(store_url)
        yield store
        await store.close()


async def run_sql(base_url: str, schema: str, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL on a connection of its own, as another program would."""
    async with await psycopg.AsyncConnection.connect(
        base_url, autocommit=True, options=f"-c search_path={schema}"
    ) as conn:
        cursor = await conn.execute(statement)
        return await cursor.fetchall() if cursor.description else []


async def test_everything_survives_a_new_store_instance(store_url: str) -> None:
    store = PostgresStore(store_url)
    await running(store, variables={"a": [1, 2.0]}, state={"k": "v"})
    await store.checkpoint(step(entries=[make_entry()], output={"x": 1}, set_output=True))
    before, entries = await store.load("ex-1"), await store.entries("ex-1")
    await store.close()

    reopened = open_store(store_url)
    assert isinstance(reopened, PostgresStore)
    assert await reopened.load("ex-1") == before
    assert await reopened.entries("ex-1") == entries
    assert await reopened.load_definition("hash-1") == "definition text"
    await reopened.close()


async def test_two_stores_race_claims_with_one_winner(store_url: str) -> None:
    first, second = PostgresStore(store_url), PostgresStore(store_url)
    for n in range(5):
        created = await first.create(make_record(f"ex-{n}"), "d")
        results = await asyncio.gather(
            first.claim(f"ex-{n}", owner="first", lease_expires_at=9.0, expected_version=1),
            second.claim(f"ex-{n}", owner="second", lease_expires_at=9.0, expected_version=1),
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].version == created.version + 1
        assert await second.load(f"ex-{n}") == winners[0]
    await first.close()
    await second.close()


async def test_stores_opening_a_new_schema_at_once_migrate_it_once(
    postgres_url: str, schema: str, store_url: str
) -> None:
    stores = [PostgresStore(store_url) for _ in range(4)]
    assert await asyncio.gather(*(s.load("nope") for s in stores)) == [None] * 4
    for store in stores:
        await store.close()
    assert await run_sql(postgres_url, schema, "SELECT version FROM schema_version") == [(1,)]
    tables = await run_sql(
        postgres_url,
        schema,
        f"SELECT table_name::text FROM information_schema.tables WHERE table_schema = '{schema}'"
        " ORDER BY 1",
    )
    assert [t for (t,) in tables] == [
        "definitions",
        "entries",
        "executions",
        "schema_version",
        "state",
        "variables",
    ]


async def test_without_a_schema_option_the_tables_go_to_the_search_path(
    postgres_url: str, schema: str
) -> None:
    database = schema  # a database of this test's own, so that its public schema is empty
    await run_sql(postgres_url, "public", f"CREATE DATABASE {database}")
    try:
        url = with_database(postgres_url, database)
        store = PostgresStore(url)
        assert store.schema is None
        await running(store)
        await store.close()
        rows = await run_sql(
            url,
            "public",
            "SELECT table_schema::text, COUNT(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') GROUP BY 1",
        )
        assert rows == [("public", 6)]
    finally:
        await run_sql(postgres_url, "public", f"DROP DATABASE {database} WITH (FORCE)")


async def test_json_values_are_kept_as_written_in_json_columns(
    postgres_url: str, schema: str, store_url: str
) -> None:
    store = PostgresStore(store_url)
    await running(store, variables={"big": 1e300, "zero": -0.0, "nul": "\u0000"})
    await store.close()
    rows = await run_sql(
        postgres_url, schema, "SELECT name, value::text FROM variables ORDER BY name"
    )
    assert rows == [("big", "1e+300"), ("nul", '"\\u0000"'), ("zero", "-0.0")]


async def test_a_checkpoints_values_and_entries_are_stored_as_encoded(
    postgres_url: str, schema: str, store_url: str
) -> None:
    # A checkpoint sends its rows as JSON arrays: each value arrives as the text dwf encoded
    # (a "\u0000" inside included), an entry without output or error has SQL NULLs, times
    # and attempts keep their types, and the entries keep their order.
    store = PostgresStore(store_url)
    await running(store)
    entries = [
        make_entry('a"b', output={"nul": "\u0000", "f": 1e-300}, started_at=0.1, attempt=3),
        make_entry("ünï", error={"type": "E", "message": "x"}, finished_at=1e10),
        make_entry("plain"),
    ]
    await store.checkpoint(
        step(set_variables={"nul": "\u0000", "f": -0.0}, set_state={"k": [1]}, entries=entries)
    )
    await store.close()
    assert await run_sql(
        postgres_url, schema, "SELECT name, value::text FROM variables ORDER BY name"
    ) == [("f", "-0.0"), ("nul", '"\\u0000"')]
    assert await run_sql(postgres_url, schema, "SELECT key, value::text FROM state") == [
        ("k", "[1]")
    ]
    assert await run_sql(
        postgres_url,
        schema,
        "SELECT seq, step_id, attempt, started_at, finished_at, output::text, error::text"
        " FROM entries ORDER BY seq",
    ) == [
        (1, 'a"b', 3, 0.1, 10.5, '{"nul":"\\u0000","f":1e-300}', None),
        (2, "ünï", 1, 10.0, 1e10, None, '{"type":"E","message":"x"}'),
        (3, "plain", 1, 10.0, 10.5, None, None),
    ]


async def test_a_checkpoint_after_1000_variables_writes_only_the_changed_rows(
    postgres_url: str, schema: str, store_url: str
) -> None:
    store = PostgresStore(store_url)
    many = {f"v{i}": {"i": i} for i in range(1000)}
    await running(store, variables=many, state={f"s{i}": i for i in range(1000)})
    await run_sql(
        postgres_url,
        schema,
        "CREATE TABLE writes (tbl TEXT, op TEXT);"
        " CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;"
        " CREATE TRIGGER count_variables AFTER INSERT OR UPDATE OR DELETE ON variables"
        " FOR EACH ROW EXECUTE FUNCTION count_write();"
        " CREATE TRIGGER count_state AFTER INSERT OR UPDATE OR DELETE ON state"
        " FOR EACH ROW EXECUTE FUNCTION count_write();",
    )
    await store.checkpoint(
        step(
            set_variables={"v1": "changed", "new": 1}, delete_variables=["v2"], set_state={"s1": 0}
        )
    )
    assert await run_sql(
        postgres_url,
        schema,
        "SELECT tbl::text, op::text, COUNT(*) FROM writes GROUP BY 1, 2 ORDER BY 1, 2",
    ) == [
        ("state", "UPDATE", 1),
        ("variables", "DELETE", 1),
        ("variables", "INSERT", 1),
        ("variables", "UPDATE", 1),
    ]
    loaded = await store.load("ex-1")
    assert loaded is not None
    assert len(loaded.variables) == 1000
    await store.close()


async def test_a_write_that_fails_midway_rolls_back_completely(
    postgres_url: str, schema: str, store_url: str
) -> None:
    store = PostgresStore(store_url)
    claimed = await running(store, variables={"a": 1})
    await run_sql(
        postgres_url,
        schema,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    with pytest.raises(StoreError, match="disk on fire") as caught:
        await store.checkpoint(step(set_variables={"a": 2, "b": 3}, entries=[make_entry()]))
    assert "127.0.0.1" in str(caught.value)
    assert await store.load("ex-1") == claimed
    await store.close()


async def test_a_connection_lost_mid_checkpoint_raises_store_error_and_writes_nothing(
    postgres_url: str, schema: str, store_url: str
) -> None:
    store = PostgresStore(store_url)
    claimed = await running(store, variables={"a": 1})
    # The server ends the connection after the variables were written, before the commit.
    await run_sql(
        postgres_url,
        schema,
        "CREATE FUNCTION hang_up() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;"
        " CREATE TRIGGER hang_up BEFORE INSERT ON entries"
        " FOR EACH ROW EXECUTE FUNCTION hang_up();",
    )
    with pytest.raises(StoreError, match="lost the connection to the PostgreSQL store"):
        await store.checkpoint(step(set_variables={"a": 2, "b": 3}, entries=[make_entry()]))
    assert await store.load("ex-1") == claimed
    await run_sql(postgres_url, schema, "DROP TRIGGER hang_up ON entries")
    assert await store.checkpoint(step(set_variables={"a": 2})) == claimed.version + 1
    await store.close()


async def test_a_refused_connection_raises_store_error_quickly_without_the_password() -> None:
    port = free_port()
    store = open_store(f"postgresql://dwf:hunter2@127.0.0.1:{port}/dwf?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=f"cannot connect to the PostgreSQL store at 127.0.0.1:{port}"
    ):
        await store.load("ex-1")
    assert time.monotonic() - started < 5
    assert "hunter2" not in store.url
    await store.close()


async def test_no_free_connection_within_pool_timeout_raises_store_error(store_url: str) -> None:
    store = PostgresStore(with_options(store_url, pool_max="1", pool_timeout="0.2"))
    await store.create(make_record(), "d")
    pool = store._pools.current
    assert pool is not None
    async with pool.connection():  # the only connection is busy
        with pytest.raises(StoreError, match=r"within 0.2 s.*pool_max"):
            await store.load("ex-1")
    assert await store.load("ex-1") is not None
    await store.close()


async def test_another_programs_tables_are_not_taken_over(
    postgres_url: str, schema: str, store_url: str
) -> None:
    await run_sql(postgres_url, "public", f"CREATE SCHEMA {schema}")
    await run_sql(postgres_url, schema, "CREATE TABLE executions (id INTEGER)")
    store = PostgresStore(store_url)
    with pytest.raises(StoreError, match=r"already holds tables named like dwf's \(executions\)"):
        await store.create(make_record(), "d")
    await store.close()


async def test_a_store_from_a_newer_dwf_asks_for_an_upgrade(
    postgres_url: str, schema: str, store_url: str
) -> None:
    store = PostgresStore(store_url)
    await store.create(make_record(), "d")
    await store.close()
    await run_sql(postgres_url, schema, "INSERT INTO schema_version VALUES (99, 0)")
    newer = PostgresStore(store_url)
    with pytest.raises(StoreError, match=r"newer dwf \(schema version 99.*Upgrade dwf"):
        await newer.load("ex-1")
    await newer.close()


def test_an_engine_halts_and_resumes_through_the_sync_wrappers(store_url: str) -> None:
    check_sync_engine_round_trip(store_url, PostgresStore)


# -- URLs ------------------------------------------------------------------------------------


def test_url_options_are_parsed_and_the_password_is_hidden() -> None:
    store = open_store(
        "postgres://me:s3cret@db.example:6543/app?schema=dwf&pool_max=3&pool_timeout=2.5"
        "&sslmode=prefer"
    )
    assert isinstance(store, PostgresStore)
    assert (store.schema, store.pool_max, store.pool_timeout) == ("dwf", 3, 2.5)
    assert store.where == "db.example:6543/app"
    assert "s3cret" not in store.url
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/db?schema=Bad-Name", "bad schema 'Bad-Name'"),
        ("postgresql://u@h/db?pool_max=0", "pool_max .* whole number >= 1"),
        ("postgresql://u@h/db?pool_timeout=soon", "pool_timeout .* seconds > 0"),
        ("postgresql://u:pw@h/db?pool_size=3", r"bad PostgreSQL store URL.*pool_size.*pool_max"),
    ],
)
def test_bad_postgres_urls_raise_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_store(url)
    assert ":pw@" not in str(caught.value)


async def test_a_checkpoint_status_change_is_listed_by_the_indexes(store_url: str) -> None:
    store = PostgresStore(store_url)
    await running(store)
    await store.checkpoint(step(status=Status.HALTED))
    assert [s.id for s in await store.find(status=Status.HALTED)] == ["ex-1"]
    assert await store.find(status=Status.RUNNING) == []
    await store.close()
