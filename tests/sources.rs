//! Sources managed by SQL against the real backends: `CREATE / ALTER /
//! DROP / REFRESH SOURCE` of every kind, kept in the metadata store across
//! restarts; the errors each mistake gets; admin rights; no secret in any
//! system table, SHOW, EXPLAIN or error; and health — a private PostgreSQL
//! cluster stopped and started again is seen down and back by itself.

mod support;

use std::time::{Duration, Instant};

use koios::config::Config;
use support::private_pg::PrivatePostgres;
use support::{
    MongoTestDatabase, MyTestDatabase, PgTestDatabase, ScratchMetadata, TestServer, mongodb_url,
    query_error,
};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The text rows of `sql`.
async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e} {:?}", e.as_db_error().map(|d| d.message())));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

async fn scalar(client: &Client, sql: &str) -> String {
    rows(client, sql).await[0][0].clone().unwrap_or_default()
}

/// The SQLSTATE of a statement that must fail.
async fn error_code(client: &Client, sql: &str) -> (String, String) {
    let err = client.simple_query(sql).await.expect_err(sql);
    let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
    (db.code().code().to_string(), db.message().to_string())
}

fn config_with_store(metadata: &ScratchMetadata, extra: &str) -> Config {
    let text = format!(
        "[server]\nmetadata = \"{}\"\n{extra}",
        metadata.path.display()
    );
    Config::parse(&text, std::path::Path::new("sources.toml"), &|name| {
        std::env::var(name).ok()
    })
    .expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_of_every_kind_created_by_sql_survive_a_restart() {
    let pg = PgTestDatabase::create();
    let my = MyTestDatabase::create();
    let mongo = MongoTestDatabase::create();
    let metadata = ScratchMetadata::create();
    let files = std::env::temp_dir().join(format!("koios-sources-files-{}", std::process::id()));
    std::fs::create_dir_all(&files).expect("files dir");
    std::fs::write(files.join("points.csv"), "x,y\n1,2\n3,4\n").expect("csv");
    let demo_dir = support::test_data_dir().join("demo-sources-test");

    let server = TestServer::start(config_with_store(&metadata, "")).await;
    let client = server.connect("koios").await;
    let statements = [
        format!(
            "CREATE SOURCE pg_sql USING postgres WITH (url = 'postgres://postgres@127.0.0.1:5432/{}', pool_size = 2)",
            pg.name
        ),
        format!(
            "CREATE SOURCE my_sql USING mysql WITH (url = 'mysql://root@127.0.0.1:3306/{}', split_count = 1)",
            my.name
        ),
        format!(
            "CREATE SOURCE mongo_sql USING mongodb WITH (url = '{}', databases = ARRAY['{}'], sample_size = 50)",
            mongodb_url(),
            mongo.name
        ),
        format!(
            "CREATE SOURCE files_sql USING files WITH (url = '{}')",
            files.display()
        ),
        format!(
            "CREATE SOURCE demo_sql USING demo WITH (url = '{}', scale_factor = 0.01)",
            demo_dir.display()
        ),
    ];
    for statement in &statements {
        client
            .simple_query(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    let queries = [
        "SELECT capital FROM pg_sql.public.nation_stats WHERE n_nationkey = 6".to_string(),
        format!(
            "SELECT count(*) FROM my_sql.{}.zero_dates WHERE id = 2",
            my.name
        ),
        format!("SELECT count(*) > 0 FROM mongo_sql.{}.people", mongo.name),
        "SELECT sum(y) FROM files_sql.public.points".to_string(),
        "SELECT count(*) FROM demo_sql.public.region".to_string(),
    ];
    let expected = ["Paris", "1", "t", "6", "5"];
    for (query, want) in queries.iter().zip(expected) {
        assert_eq!(scalar(&client, query).await, want, "{query}");
    }
    // Visible to every session at once, and listed with their origin.
    let other = server.connect("koios").await;
    assert_eq!(
        rows(
            &other,
            "SELECT name, origin, state FROM koios.system.sources ORDER BY name"
        )
        .await,
        [
            ["demo_sql", "sql", "ready"],
            ["files_sql", "sql", "ready"],
            ["mongo_sql", "sql", "ready"],
            ["my_sql", "sql", "ready"],
            ["pg_sql", "sql", "ready"]
        ]
        .map(|r| r.map(|v| Some(v.to_string())).to_vec())
    );
    // REFRESH SOURCE sees a table created remotely.
    pg.execute("CREATE TABLE made_later (v int); INSERT INTO made_later VALUES (42)")
        .expect("remote DDL");
    client
        .simple_query("REFRESH SOURCE pg_sql")
        .await
        .expect("refresh");
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*) FROM koios.system.tables WHERE source = 'pg_sql' AND \"table\" = 'made_later'"
        )
        .await,
        "1"
    );
    drop(client);
    drop(other);
    server.engine.close().await;
    drop(server);

    // A new server on the same store serves them all again.
    let server = TestServer::start(config_with_store(&metadata, "")).await;
    let client = server.connect("koios").await;
    for (query, want) in queries.iter().zip(expected) {
        assert_eq!(scalar(&client, query).await, want, "after restart: {query}");
    }
    // ALTER reconnects with the new options (a wrong database fails and
    // changes nothing), DROP forgets the source for good.
    let (code, message) = error_code(
        &client,
        "ALTER SOURCE pg_sql SET (url = 'postgres://postgres@127.0.0.1:5432/koios_no_such_db')",
    )
    .await;
    assert_eq!(code, "08001", "{message}");
    assert!(
        message.contains("database \"koios_no_such_db\" does not exist"),
        "the backend's error: {message}"
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT capital FROM pg_sql.public.nation_stats WHERE n_nationkey = 7"
        )
        .await,
        "Berlin"
    );
    client
        .simple_query("ALTER SOURCE pg_sql SET (pool_size = 1, split_count = 1)")
        .await
        .expect("alter");
    assert_eq!(scalar(&client, &queries[0]).await, "Paris");
    client
        .simple_query("DROP SOURCE my_sql; DROP SOURCE IF EXISTS my_sql")
        .await
        .expect("drop");
    let (code, _) = error_code(&client, &queries[1]).await;
    assert!(code == "3D000" || code == "42P01", "{code}");
    drop(client);
    server.engine.close().await;
    drop(server);

    let server = TestServer::start(config_with_store(&metadata, "")).await;
    let client = server.connect("koios").await;
    assert_eq!(
        scalar(
            &client,
            "SELECT string_agg(name, ',' ORDER BY name) FROM koios.system.sources"
        )
        .await,
        "demo_sql,files_sql,mongo_sql,pg_sql"
    );
    for name in ["pg_sql", "mongo_sql", "files_sql", "demo_sql"] {
        client
            .simple_query(&format!("DROP SOURCE {name}"))
            .await
            .expect("drop");
    }
    server.engine.close().await;
    let _ = std::fs::remove_dir_all(&files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mistake_gets_a_clear_error_and_changes_nothing() {
    let pg = PgTestDatabase::create();
    let metadata = ScratchMetadata::create();
    let file_source = format!(
        "[[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        pg.name
    );
    let server = TestServer::start(config_with_store(&metadata, &file_source)).await;
    let client = server.connect("koios").await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{}", pg.name);
    client
        .simple_query(&format!(
            "CREATE SOURCE pg2 USING postgres WITH (url = '{url}')"
        ))
        .await
        .expect("create");
    let unreachable = support::free_port();
    let cases = [
        (
            format!("CREATE SOURCE pg2 USING postgres WITH (url = '{url}')"),
            "42710",
            "source 'pg2' already exists",
        ),
        (
            format!("CREATE SOURCE pg USING postgres WITH (url = '{url}')"),
            "42710",
            "from the configuration file",
        ),
        (
            format!("CREATE SOURCE x USING oracle WITH (url = '{url}')"),
            "42704",
            "unknown source kind 'oracle'; this build knows: demo, files, mongodb, mysql, postgres",
        ),
        (
            format!("CREATE SOURCE x USING postgres WITH (url = '{url}', pool_sise = 2)"),
            "22023",
            "option 'pool_sise': unknown field `pool_sise`",
        ),
        (
            format!("CREATE SOURCE x USING postgres WITH (url = '{url}', pool_size = 'big')"),
            "22023",
            "option 'pool_size'",
        ),
        (
            "CREATE SOURCE x USING postgres WITH (url = 'not a url at all')".to_string(),
            "08001",
            "cannot connect to source 'x'",
        ),
        (
            format!(
                "CREATE SOURCE x USING postgres WITH (url = 'postgres://postgres@127.0.0.1:{unreachable}/db')"
            ),
            "08001",
            "validate = false",
        ),
        (
            "CREATE SOURCE x USING postgres WITH (pool_size = 2)".to_string(),
            "42601",
            "needs WITH (url",
        ),
        (
            "CREATE SOURCE koios USING files WITH (url = '/tmp')".to_string(),
            "42602",
            "invalid source name",
        ),
        (
            "CREATE SOURCE x USING files WITH (url = '${KOIOS_TEST_SURELY_UNSET}')".to_string(),
            "22023",
            "environment variable KOIOS_TEST_SURELY_UNSET is not set",
        ),
        (
            "DROP SOURCE nope".to_string(),
            "42704",
            "source 'nope' does not exist",
        ),
        (
            "DROP SOURCE pg".to_string(),
            "55000",
            "comes from the configuration file",
        ),
        (
            "ALTER SOURCE pg SET (pool_size = 2)".to_string(),
            "55000",
            "comes from the configuration file",
        ),
        (
            "ALTER SOURCE pg2 SET (pool_size = -1)".to_string(),
            "22023",
            "option 'pool_size'",
        ),
        (
            "REFRESH SOURCE nope".to_string(),
            "42704",
            "source 'nope' does not exist",
        ),
    ];
    for (sql, code, needle) in &cases {
        let (got, message) = error_code(&client, sql).await;
        assert_eq!(&got, code, "{sql}: {message}");
        assert!(message.contains(needle), "{sql}: {message}");
    }
    // Nothing was stored or attached by the failures; validate = false
    // keeps an unreachable source, marked down, and a query on it fails
    // at once with 08006.
    client
        .simple_query(&format!(
            "CREATE SOURCE later USING postgres WITH (url = 'postgres://postgres@127.0.0.1:{unreachable}/db', validate = false)"
        ))
        .await
        .expect("kept");
    assert_eq!(
        rows(
            &client,
            "SELECT name, origin, state FROM koios.system.sources ORDER BY name"
        )
        .await,
        [
            ["later", "sql", "down"],
            ["pg", "file", "ready"],
            ["pg2", "sql", "ready"]
        ]
        .map(|r| r.map(|v| Some(v.to_string())).to_vec())
    );
    let started = Instant::now();
    let (code, message) = error_code(&client, "SELECT * FROM later.public.t").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.contains("source 'later' is unavailable"),
        "{message}"
    );
    let stored = server.engine.source_names();
    assert_eq!(stored, ["later", "pg", "pg2"]);
    client
        .simple_query("DROP SOURCE later; DROP SOURCE pg2")
        .await
        .expect("drop");
}

async fn private_state(client: &Client) -> String {
    scalar(
        client,
        "SELECT state FROM koios.system.sources WHERE name = 'private'",
    )
    .await
}

fn users_config(metadata: &ScratchMetadata) -> Config {
    config_with_store(
        metadata,
        "[[user]]\nname = \"boss\"\npassword = \"boss-pw\"\nadmin = true\n\n\
         [[user]]\nname = \"clerk\"\npassword = \"clerk-pw\"\n",
    )
}

async fn connect_as(server: &TestServer, user: &str, password: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=koios",
            server.addr.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_manage_sources() {
    let pg = PgTestDatabase::create();
    let metadata = ScratchMetadata::create();
    let server = TestServer::start(users_config(&metadata)).await;
    let clerk = connect_as(&server, "clerk", "clerk-pw").await;
    let boss = connect_as(&server, "boss", "boss-pw").await;
    let create = format!(
        "CREATE SOURCE pg_b USING postgres WITH (url = 'postgres://postgres@127.0.0.1:5432/{}')",
        pg.name
    );
    for sql in [
        create.as_str(),
        "ALTER SOURCE pg_b SET (pool_size = 1)",
        "DROP SOURCE pg_b",
    ] {
        let (code, message) = error_code(&clerk, sql).await;
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("permission denied"), "{message}");
    }
    boss.simple_query(&create).await.expect("admin creates");
    // Everyone may read through it and see it listed.
    assert_eq!(
        scalar(
            &clerk,
            "SELECT capital FROM pg_b.public.nation_stats WHERE n_nationkey = 8"
        )
        .await,
        "New Delhi"
    );
    assert_eq!(
        rows(&clerk, "SHOW SOURCES").await[0][..3],
        [
            Some("pg_b".to_string()),
            Some("postgres".to_string()),
            Some("sql".to_string())
        ]
    );
    let (code, _) = error_code(&clerk, "DROP SOURCE pg_b").await;
    assert_eq!(code, "42501");
    boss.simple_query("DROP SOURCE pg_b")
        .await
        .expect("admin drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_show_and_health_follows_the_server() {
    let cluster = PrivatePostgres::start();
    let port = cluster.port();
    let password = PrivatePostgres::PASSWORD;
    let direct = cluster.connect().await;
    direct
        .batch_execute("CREATE TABLE t AS SELECT generate_series(1, 5) AS n")
        .await
        .expect("table");
    drop(direct);
    let local = PgTestDatabase::create();
    let metadata = ScratchMetadata::create();
    let extra = format!(
        "health_interval = \"1s\"\n\n[[source]]\nname = \"local\"\nkind = \"postgres\"\n\
         url = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        local.name
    );
    let server = TestServer::start(config_with_store(&metadata, &extra)).await;
    let client = server.connect("koios").await;
    client
        .simple_query(&format!(
            "CREATE SOURCE private USING postgres WITH (url = 'postgres://postgres:{password}@127.0.0.1:{port}/postgres')"
        ))
        .await
        .expect("create with a literal password");
    assert_eq!(
        scalar(&client, "SELECT sum(n) FROM private.public.t").await,
        "15"
    );

    // No system table, SHOW, EXPLAIN or error shows the password.
    let mut shown = String::new();
    for sql in [
        "SHOW SOURCES",
        "SELECT * FROM koios.system.sources",
        "SELECT * FROM koios.system.tables",
        "EXPLAIN SELECT * FROM private.public.t LIMIT 1",
    ] {
        for row in rows(&client, sql).await {
            shown.push_str(&format!("{row:?}\n"));
        }
    }
    shown.push_str(&query_error(&client, "SELECT * FROM private.public.no_such_table").await);
    shown.push_str(
        &query_error(
            &client,
            &format!("CREATE SOURCE private USING postgres WITH (url = 'postgres://postgres:{password}@127.0.0.1:{port}/postgres')"),
        )
        .await,
    );
    assert!(
        shown.contains("postgres://postgres:***@127.0.0.1"),
        "{shown}"
    );
    assert!(!shown.contains(password), "a password leaked:\n{shown}");

    // Stopped: down within two intervals; a query on it fails at once with
    // 08006 while the other source answers.
    cluster.stop();
    let stopped = Instant::now();
    while private_state(&client).await != "down" {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "still ready {:?} after the stop",
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let (code, message) = error_code(&client, "SELECT sum(n) FROM private.public.t").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, "08006", "{message}");
    assert!(message.contains("source 'private'"), "{message}");
    assert!(!message.contains(password), "{message}");
    assert_eq!(
        scalar(
            &client,
            "SELECT capital FROM local.public.nation_stats WHERE n_nationkey = 12"
        )
        .await,
        "Tokyo"
    );
    let error = scalar(
        &client,
        "SELECT last_error FROM koios.system.sources WHERE name = 'private'",
    )
    .await;
    assert!(!error.is_empty() && !error.contains(password), "{error}");

    // Started again: ready within two intervals, queryable, no command.
    cluster.start_server();
    let restarted = Instant::now();
    while private_state(&client).await != "ready" {
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "still down {:?} after the restart",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scalar(&client, "SELECT sum(n) FROM private.public.t").await,
        "15"
    );
    client
        .simple_query("DROP SOURCE private")
        .await
        .expect("drop");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_postgresql_metadata_store() {
    let data = PgTestDatabase::create();
    let store = PgTestDatabase::create();
    let config = || {
        Config::parse(
            &format!(
                "[server]\nmetadata = \"postgres://postgres@127.0.0.1:5432/{}\"\nhealth_interval = \"1s\"\n",
                store.name
            ),
            std::path::Path::new("shared.toml"),
            &|_| None,
        )
        .expect("valid config")
    };
    let a = TestServer::start(config()).await;
    let b = TestServer::start(config()).await;
    let on_a = a.connect("koios").await;
    let on_b = b.connect("koios").await;
    on_a.simple_query(&format!(
        "CREATE SOURCE shared USING postgres WITH (url = 'postgres://postgres@127.0.0.1:5432/{}', pool_size = 1)",
        data.name
    ))
    .await
    .expect("create on A");
    // What the store holds, read with PostgreSQL's own client.
    let direct = support::postgres_client(&store.name).await;
    let stored = direct
        .query_one("SELECT name, kind, url FROM koios_sources", &[])
        .await
        .expect("the store's table");
    assert_eq!(stored.get::<_, String>(0), "shared");
    assert_eq!(stored.get::<_, String>(1), "postgres");
    let version = direct
        .query_one("SELECT version FROM koios_schema_version", &[])
        .await
        .expect("the store's version");
    assert_eq!(
        version.get::<_, i64>(0),
        4,
        "sources, logical tables, mirror journals, jobs"
    );

    // B picks it up within one health interval, and serves it.
    let started = Instant::now();
    loop {
        let listed = scalar(
            &on_b,
            "SELECT count(*) FROM koios.system.sources WHERE name = 'shared'",
        )
        .await;
        if listed == "1" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "B never saw it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        scalar(
            &on_b,
            "SELECT capital FROM shared.public.nation_stats WHERE n_nationkey = 6"
        )
        .await,
        "Paris"
    );
    // B's duplicate is refused by the store itself.
    let (code, _) = error_code(
        &on_b,
        &format!(
            "CREATE SOURCE shared USING postgres WITH (url = 'postgres://postgres@127.0.0.1:5432/{}')",
            data.name
        ),
    )
    .await;
    assert_eq!(code, "42710");
    on_a.simple_query("DROP SOURCE shared")
        .await
        .expect("drop on A");
    let started = Instant::now();
    while scalar(
        &on_b,
        "SELECT count(*) FROM koios.system.sources WHERE name = 'shared'",
    )
    .await
        != "0"
    {
        assert!(started.elapsed() < Duration::from_secs(5), "B kept it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = direct
        .query_one("SELECT count(*) FROM koios_sources", &[])
        .await
        .expect("count");
    assert_eq!(left.get::<_, i64>(0), 0);
    drop((on_a, on_b, direct));
    a.engine.close().await;
    b.engine.close().await;
}
