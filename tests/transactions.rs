//! Transaction blocks against the real backends, where the `.slt` suite
//! cannot look: the SQLSTATEs of the refusals, the transaction status each
//! ReadyForQuery reports (back to "in a block" after `ROLLBACK TO
//! SAVEPOINT` recovers a failed one), and a client killed in the middle of
//! a block leaving nothing behind on PostgreSQL and MariaDB — no row, no
//! lock, no connection idle in a transaction — an upsert prepared with
//! parameters run inside a block, and an `INSERT … RETURNING` prepared with
//! parameters.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{TestServer, frontend_message, mariadb_output, postgres_client, test_config};
use tokio_postgres::Client;

/// The SQLSTATE of a statement that must fail.
async fn error_code(client: &Client, sql: &str) -> String {
    let err = client.simple_query(sql).await.expect_err(sql);
    let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
    db.code().code().to_string()
}

/// A Koios connection whose socket the test can close at will.
async fn killable(server: &TestServer) -> (Client, tokio::task::JoinHandle<()>) {
    let (client, connection) =
        tokio_postgres::connect(&server.conn_string("koios"), tokio_postgres::NoTls)
            .await
            .expect("connects to Koios");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

/// Polls `check` for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_refuse_undo_and_survive_killed_clients() {
    let (config, databases) = test_config();
    let my_db = databases.my.name.clone();
    let pg_db = databases.pg.name.clone();
    let server = TestServer::start(config).await;
    let koios = server.connect("koios").await;
    koios
        .batch_execute(&format!(
            "CREATE SCHEMA pg.tx_kill; CREATE TABLE pg.tx_kill.t (id int PRIMARY KEY, v text); \
             CREATE TABLE my.{my_db}.tx_kill (id int PRIMARY KEY, v text)"
        ))
        .await
        .expect("creates the tables");

    // The refusals' SQLSTATEs.
    koios.batch_execute("BEGIN").await.expect("BEGIN");
    koios
        .batch_execute("INSERT INTO pg.tx_kill.t VALUES (1, 'a')")
        .await
        .expect("first write");
    assert_eq!(
        error_code(
            &koios,
            &format!("INSERT INTO my.{my_db}.tx_kill VALUES (1, 'a')")
        )
        .await,
        "0A000",
        "a second source's write"
    );
    assert_eq!(
        error_code(&koios, "SELECT 1").await,
        "25P02",
        "failed block"
    );
    koios.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    koios.batch_execute("BEGIN").await.expect("BEGIN");
    koios
        .batch_execute("INSERT INTO pg.tx_kill.t VALUES (1, 'a')")
        .await
        .expect("write");
    assert_eq!(
        error_code(&koios, "DROP TABLE pg.tx_kill.t").await,
        "25001",
        "DDL after a write"
    );
    koios.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    assert_eq!(
        error_code(&koios, "SAVEPOINT outside").await,
        "25P01",
        "savepoint outside a block"
    );

    // Killed in the middle of a block: PostgreSQL undoes it.
    let pg = postgres_client(&pg_db).await;
    let (client, connection) = killable(&server).await;
    client
        .batch_execute("BEGIN; INSERT INTO pg.tx_kill.t VALUES (2, 'killed'); UPDATE pg.tx_kill.t SET v = 'x' WHERE id = 2")
        .await
        .expect("writes in a block");
    let in_transaction = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
    let open: i64 = pg
        .query_one(in_transaction, &[])
        .await
        .expect("activity")
        .get(0);
    assert_eq!(open, 1, "the block's connection waits in its transaction");
    connection.abort();
    drop(client);
    eventually(
        "PostgreSQL's transaction ends when the client is gone",
        || async {
            let open: i64 = pg
                .query_one(in_transaction, &[])
                .await
                .expect("activity")
                .get(0);
            open == 0
        },
    )
    .await;
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM tx_kill.t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "nothing of the killed block is left");

    // The same on MariaDB, whose lock on the row must go too.
    let (client, connection) = killable(&server).await;
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO my.{my_db}.tx_kill VALUES (2, 'killed')"
        ))
        .await
        .expect("writes in a block");
    let open = || mariadb_output(None, "SELECT count(*) FROM information_schema.INNODB_TRX");
    assert_eq!(open().trim(), "1", "the block's transaction is open");
    connection.abort();
    drop(client);
    eventually(
        "MariaDB's transaction ends when the client is gone",
        || async { open().trim() == "0" },
    )
    .await;
    let inserted = mariadb_output(
        Some(&my_db),
        "SET SESSION innodb_lock_wait_timeout = 5; INSERT INTO tx_kill VALUES (2, 'direct'); SELECT v FROM tx_kill",
    );
    assert_eq!(inserted.trim(), "direct", "no row and no lock are left");

    // The transaction status clients see, message by message.
    let addr = server.addr;
    let statuses = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).expect("connects");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        socket
            .write_all(&support::startup_packet("koios", "koios"))
            .expect("startup");
        ready_status(&mut socket);
        [
            "BEGIN",
            "INSERT INTO pg.tx_kill.t VALUES (5, 'five')",
            "SAVEPOINT s",
            "INSERT INTO pg.tx_kill.t VALUES (5, 'again')",
            "SELECT 1",
            "ROLLBACK TO SAVEPOINT s",
            "SELECT 1",
            "COMMIT",
        ]
        .iter()
        .map(|sql| {
            let mut body = sql.as_bytes().to_vec();
            body.push(0);
            socket
                .write_all(&frontend_message(b'Q', &body))
                .expect("query");
            ready_status(&mut socket)
        })
        .collect::<String>()
    })
    .await
    .expect("the raw client runs");
    assert_eq!(statuses, "TTTEETTI", "ReadyForQuery after each statement");
    let kept: i64 = pg
        .query_one(
            "SELECT count(*) FROM tx_kill.t WHERE id = 5 AND v = 'five'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 1, "the write before the savepoint is committed");

    // An upsert prepared once and run with parameters, inside a block.
    let upsert = koios
        .prepare("INSERT INTO pg.tx_kill.t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v")
        .await
        .expect("prepares an upsert with parameters");
    koios.batch_execute("BEGIN").await.expect("BEGIN");
    for (id, v) in [(5, "five again"), (6, "six")] {
        let count = koios.execute(&upsert, &[&id, &v]).await.expect("upserts");
        assert_eq!(count, 1, "upsert of {id}");
    }
    koios.batch_execute("COMMIT").await.expect("COMMIT");
    let upserted: Vec<(i32, String)> = pg
        .query("SELECT id, v FROM tx_kill.t WHERE id >= 5 ORDER BY id", &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        upserted,
        [(5, "five again".to_string()), (6, "six".to_string())],
        "what PostgreSQL holds after the upserts"
    );

    // An insert returning rows, prepared once (the column list leaves `id`
    // to the sequence) and run with parameters: the rows come back as
    // PostgreSQL stored them, with the command tag's count.
    pg.batch_execute("CREATE TABLE tx_kill.serials (id serial PRIMARY KEY, v text NOT NULL)")
        .await
        .expect("creates a table with a sequence");
    koios
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");
    let returning = koios
        .prepare(
            "INSERT INTO pg.tx_kill.serials (v) VALUES ($1), ($2) RETURNING id, upper(v) AS shout",
        )
        .await
        .expect("prepares an insert returning rows");
    let columns: Vec<(&str, String)> = returning
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_().name().to_string()))
        .collect();
    assert_eq!(
        columns,
        [("id", "int4".to_string()), ("shout", "text".to_string())]
    );
    for (round, first_id) in [(0, 1), (1, 3)] {
        let rows = koios
            .query(&returning, &[&format!("a{round}"), &format!("b{round}")])
            .await
            .expect("inserts returning rows");
        let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            got,
            [
                (first_id, format!("A{round}")),
                (first_id + 1, format!("B{round}"))
            ],
            "round {round}"
        );
    }
    let stored: i64 = pg
        .query_one("SELECT count(*) FROM tx_kill.serials", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 4, "what PostgreSQL holds after two inserts");
    let tags = koios
        .simple_query("INSERT INTO pg.tx_kill.serials (v) VALUES ('c') RETURNING id")
        .await
        .expect("simple-protocol insert returning");
    let counted = tags.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(counted, Some(1), "INSERT 0 1 after the returned row");

    koios
        .batch_execute(&format!(
            "DROP TABLE pg.tx_kill.serials; DROP TABLE pg.tx_kill.t; DROP SCHEMA pg.tx_kill; DROP TABLE my.{my_db}.tx_kill"
        ))
        .await
        .expect("drops the tables");
}

/// Reads messages up to the next ReadyForQuery; its status byte.
fn ready_status(socket: &mut std::net::TcpStream) -> char {
    let messages = support::read_messages_until(socket, b'Z');
    messages
        .last()
        .and_then(|(_, body)| body.first())
        .map_or('?', |b| *b as char)
}
