"""The PostgreSQL the multi-node tests will store in: started by the test itself on loopback, and
what was committed survives a restart and a kill -9 of the server (crash recovery)."""

from __future__ import annotations

from tests.cluster.servers import PostgresServer


def test_committed_rows_survive_a_restart_and_a_crash(postgres_server: PostgresServer) -> None:
    server = postgres_server
    assert server.sql("SHOW listen_addresses") == "127.0.0.1"
    assert server.sql("SELECT current_setting('server_version_num')::int >= 150000") == "t"
    server.sql(
        "CREATE TABLE arrivals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, who text)"
    )
    server.sql("INSERT INTO arrivals (who) VALUES ('before restart')")
    server.restart()
    server.sql("INSERT INTO arrivals (who) VALUES ('before crash')")
    server.crash()
    assert server.sql("SELECT who FROM arrivals ORDER BY id") == "before restart\nbefore crash"
