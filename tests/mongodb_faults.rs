//! MongoDB faults: a server that is down, wrong credentials, a collection
//! dropped after discovery and documents that violate the inferred columns —
//! each a clear error naming the source, the session still usable.

mod support;

use std::time::{Duration, Instant};

use mongodb::bson::doc;
use support::{TestServer, with_mongo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_server_is_reported_without_secrets() {
    let text = r#"
[[source]]
name = "mongo_down"
kind = "mongodb"
url = "mongodb://app:hunter2-secret@127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=1000"
"#;
    let started = Instant::now();
    let server = TestServer::start_toml(text, &|_| None).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a down source must not hold the start up"
    );
    let client = server.connect("koios").await;
    let message = support::query_error(&client, "SELECT * FROM mongo_down.db.coll").await;
    assert!(
        message.contains("source 'mongo_down' is unavailable"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "password leaked: {message}");
    let row = client
        .query_one("SELECT 6 * 7", &[])
        .await
        .expect("serving");
    assert_eq!(row.get::<_, i64>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_collection_and_misfit_documents_fail_clearly() {
    let server = TestServer::start_test().await;
    let database = server.mongo.as_ref().expect("test database").name.clone();
    let client = server.connect("koios").await;
    let count =
        |n: i64| move |rows: Vec<tokio_postgres::Row>| assert_eq!(rows[0].get::<_, i64>(0), n);
    count(5)(
        client
            .query(
                &format!("SELECT count(*) FROM mongo.{database}.orders"),
                &[],
            )
            .await
            .expect("orders"),
    );

    // A document whose `person` is a string, after the columns were inferred.
    let db = database.clone();
    with_mongo(move |c| async move {
        c.database(&db)
            .collection::<mongodb::bson::Document>("orders")
            .insert_one(doc! { "_id": 200, "person": "not a number" })
            .await
            .expect("insert");
    });
    let message = support::query_error(
        &client,
        &format!("SELECT person FROM mongo.{database}.orders"),
    )
    .await;
    assert!(message.contains("source 'mongo'"), "{message}");
    assert!(
        message.contains("field 'person' holds string where the column expects int32"),
        "{message}"
    );

    // Dropped after discovery: an error, not an empty table.
    let db = database.clone();
    with_mongo(move |c| async move {
        c.database(&db)
            .collection::<mongodb::bson::Document>("orders")
            .drop()
            .await
            .expect("drop");
    });
    let message =
        support::query_error(&client, &format!("SELECT * FROM mongo.{database}.orders")).await;
    assert!(
        message.contains(&format!("collection {database}.orders no longer exists")),
        "{message}"
    );
    // The session and the other collections still work.
    count(7)(
        client
            .query(
                &format!("SELECT count(*) FROM mongo.{database}.people"),
                &[],
            )
            .await
            .expect("people"),
    );
}

/// A MongoDB-compatible server of our own that demands SCRAM credentials
/// (provisioned without auth, then restarted with `--auth`). Killed on drop.
struct AuthServer {
    dir: std::path::PathBuf,
    port: u16,
    child: std::process::Child,
}

impl AuthServer {
    fn spawn(dir: &std::path::Path, port: u16, auth: bool) -> std::process::Child {
        let mut command = std::process::Command::new("secantusd-py");
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.join("data"));
        if auth {
            command.arg("--auth");
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("secantusd-py runs (scripts/services.sh installs it)");
        support::wait_for_port(port, Duration::from_secs(30), || {
            "the auth test server did not start".into()
        });
        child
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("koios-mongo-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("directory");
        let port = support::free_port();
        let mut first = Self::spawn(&dir, port, false);
        Self::provision(port, false);
        // A graceful stop, so the user is on disk before the restart.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &first.id().to_string()])
            .status();
        let _ = first.wait();
        let child = Self::spawn(&dir, port, true);
        Self::provision(port, true);
        Self { dir, port, child }
    }

    /// Without auth: creates the user. With auth (as that user): the data.
    fn provision(port: u16, authenticated: bool) {
        let url = if authenticated {
            format!(
                "mongodb://app:the-right-one@127.0.0.1:{port}/?directConnection=true&authSource=admin"
            )
        } else {
            format!("mongodb://127.0.0.1:{port}/?directConnection=true")
        };
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    let client = mongodb::Client::with_uri_str(url).await.expect("client");
                    if authenticated {
                        client
                            .database("shop")
                            .collection::<mongodb::bson::Document>("items")
                            .insert_one(doc! { "_id": 1, "name": "widget" })
                            .await
                            .expect("insert as the provisioned user");
                    } else {
                        client
                            .database("admin")
                            .run_command(doc! { "createUser": "app", "pwd": "the-right-one", "roles": ["root"] })
                            .await
                            .expect("createUser");
                    }
                })
        })
        .join()
        .expect("provisioning");
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_without_leaking_it() {
    let auth = AuthServer::start();
    let port = auth.port;
    let text = format!(
        r#"
[[source]]
name = "mongo_wrong"
kind = "mongodb"
url = "mongodb://app:hunter2-wrong@127.0.0.1:{port}/?directConnection=true&authSource=admin"

[[source]]
name = "mongo_right"
kind = "mongodb"
url = "mongodb://app:${{MONGO_TEST_PASSWORD}}@127.0.0.1:{port}/?directConnection=true&authSource=admin"
databases = ["shop"]
"#
    );
    let env = |name: &str| (name == "MONGO_TEST_PASSWORD").then(|| "the-right-one".to_string());
    let server = TestServer::start_toml(&text, &env).await;
    let client = server.connect("koios").await;
    let message = support::query_error(&client, "SELECT * FROM mongo_wrong.shop.items").await;
    assert!(
        message.contains("source 'mongo_wrong' is unavailable"),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("auth"),
        "the reason is given: {message}"
    );
    assert!(!message.contains("hunter2"), "password leaked: {message}");
    let row = client
        .query_one("SELECT name FROM mongo_right.shop.items", &[])
        .await
        .expect("the right password works");
    assert_eq!(row.get::<_, String>(0), "widget");
    drop(auth);
}
