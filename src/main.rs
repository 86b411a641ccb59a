//! The `koios` command: `koios serve` runs the server, `koios query` runs one
//! query in-process and prints the result, `koios hash-password` turns a
//! password (read from stdin) into a SCRAM verifier for `[[user]] password`;
//! `koios sources …` and `koios status` manage and watch a running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use koios::admin::AdminServer;
use koios::config::Config;
use koios::engine::{Engine, KOIOS_CATALOG};
use koios::error::{KoiosError, Result};
use koios::server::Server;
use koios::session::{Output, Session};

// Query execution allocates many small, short-lived buffers per query
// (rows, batches, plan copies); mimalloc serves them faster than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "koios",
    version,
    about = "A federated SQL query engine speaking the PostgreSQL protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Configuration file; without it Koios serves the embedded TPC-H demo.
    #[arg(long, short, env = "KOIOS_CONFIG")]
    config: Option<PathBuf>,
    /// Scale factor of `demo` sources (default 0.1 ≈ 600k lineitem rows);
    /// overrides the configuration's `scale_factor` when given.
    #[arg(long)]
    demo_scale: Option<f64>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the PostgreSQL wire protocol.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address, e.g. 127.0.0.1:5433 (overrides [server] listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run SQL in-process and print the result like psql.
    Query {
        #[command(flatten)]
        common: Common,
        /// Database (catalog) unqualified names resolve in.
        #[arg(long, short, default_value = KOIOS_CATALOG)]
        database: String,
        /// One or more SQL statements.
        sql: String,
    },
    /// Print the SCRAM-SHA-256 verifier of a password read from stdin, for
    /// `[[user]] password = "SCRAM-SHA-256$..."`.
    HashPassword,
    /// List, add, drop or refresh the sources of a running server.
    Sources {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        action: SourcesAction,
    },
    /// A running server's uptime, connections and the health of its sources.
    Status {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// A running server's background jobs (migrations, copies being
    /// filled); with --watch, a live progress bar per unfinished job.
    Jobs {
        #[command(flatten)]
        target: TargetArgs,
        /// Redraw progress bars until every unfinished job has ended.
        #[arg(long)]
        watch: bool,
    },
}

/// Which running server the client commands talk to, and as whom.
#[derive(clap::Args)]
struct TargetArgs {
    /// HOST:PORT of the server.
    #[arg(
        long,
        env = "KOIOS_SERVER",
        default_value = "127.0.0.1:5433",
        global = true
    )]
    server: String,
    /// User name (default: $PGUSER, else koios).
    #[arg(
        long,
        short = 'U',
        env = "PGUSER",
        default_value = "koios",
        global = true
    )]
    user: String,
    /// Password (default: $PGPASSWORD).
    #[arg(long, env = "PGPASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
}

#[derive(Subcommand)]
enum SourcesAction {
    /// Every source with its health.
    List,
    /// CREATE SOURCE on the server.
    Add {
        name: String,
        /// postgres, mysql, mongodb, files or demo.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        url: String,
        /// Another option as key=value (repeatable); [a,b] is a list.
        #[arg(long = "option", short = 'o', value_parser = parse_key_value)]
        options: Vec<(String, String)>,
        /// Keep the source even if it cannot connect now (marked down).
        #[arg(long)]
        no_validate: bool,
    },
    /// DROP SOURCE on the server.
    Drop {
        name: String,
        #[arg(long)]
        if_exists: bool,
    },
    /// REFRESH SOURCE on the server.
    Refresh { name: String },
}

fn parse_key_value(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("'{text}' is not key=value"))
}

fn load_config(common: &Common) -> Result<Config> {
    let config = match &common.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    };
    Ok(match common.demo_scale {
        Some(scale) => config.with_demo_scale_factor(scale),
        None => config,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The SQL parser logs every statement's text and tokens at debug level:
    // a `CREATE SOURCE` URL may hold a password, and secrets never reach
    // the log, whatever RUST_LOG asks for.
    let filter = match "sqlparser=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { common, listen } => serve(common, listen).await,
        Command::Query {
            common,
            database,
            sql,
        } => query(common, &database, &sql).await,
        Command::HashPassword => hash_password(),
        Command::Sources { target, action } => sources(target, action).await,
        Command::Status { target } => status(target).await,
        Command::Jobs { target, watch } => jobs(target, watch).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(KoiosError::Config(message)) => {
            eprintln!("koios: configuration error: {message}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("koios: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(common: Common, listen: Option<SocketAddr>) -> Result<()> {
    let mut config = load_config(&common)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    koios::server::check_config(&config.server, config.server.listen)?;
    // Up before the catalog loads, so `/health` answers and `/ready` says
    // "not yet" while sources attach.
    let readiness = match config.server.admin_listen {
        Some(listen) => {
            let admin = AdminServer::bind(listen, config.server.admin_token.clone()).await?;
            let addr = admin.local_addr()?;
            tracing::info!(%addr, "admin endpoint: http://{addr}/metrics");
            let readiness = admin.readiness();
            tokio::spawn(async move {
                if let Err(e) = admin.run().await {
                    tracing::error!(error = %e, "admin endpoint failed");
                }
            });
            Some(readiness)
        }
        None => None,
    };
    let engine = Engine::start(&config).await?;
    let server = Server::bind(Arc::clone(&engine), config.server.listen).await?;
    if let Some(readiness) = readiness {
        readiness.ready(engine);
    }
    let addr = server.local_addr()?;
    let user = config
        .server
        .users
        .first()
        .map_or("koios", |u| u.name.as_str());
    tracing::info!(%addr, "Koios is ready: psql -h {} -p {} -U {user}", addr.ip(), addr.port());
    tokio::select! {
        result = server.run() => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| KoiosError::io("cannot read the password from stdin", e))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(KoiosError::Config(
            "no password on stdin (e.g. printf %s \"$PW\" | koios hash-password)".into(),
        ));
    }
    println!("{}", koios::server::ScramVerifier::from_password(password));
    Ok(())
}

async fn query(common: Common, database: &str, sql: &str) -> Result<()> {
    let config = load_config(&common)?;
    let engine = Engine::start(&config).await?;
    if !engine.has_database(database) {
        return Err(KoiosError::Config(format!(
            "database \"{database}\" does not exist"
        )));
    }
    let session = Session::new(Arc::clone(&engine), database);
    let printed = print_outputs(&session, sql).await;
    engine.close().await;
    printed
}

async fn print_outputs(session: &Session, sql: &str) -> Result<()> {
    for output in session.run_sql(sql).await? {
        match output {
            Output::Rows { schema, stream, .. } => {
                let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await?;
                print!(
                    "{}",
                    koios::pgtypes::render_table(&schema, &batches, &session.settings())?
                );
            }
            Output::Done { tag, rows } => match rows {
                Some(n) if tag == "INSERT" => println!("INSERT 0 {n}"),
                Some(n) => println!("{tag} {n}"),
                None => println!("{tag}"),
            },
            Output::TransactionStart => println!("BEGIN"),
            Output::TransactionEnd(tag) => println!("{tag}"),
        }
    }
    Ok(())
}

fn target(args: TargetArgs) -> koios::cli::remote::Target {
    koios::cli::remote::Target {
        server: args.server,
        user: args.user,
        password: args.password,
    }
}

async fn sources(args: TargetArgs, action: SourcesAction) -> Result<()> {
    use koios::cli::remote::{self, Remote};
    let remote = Remote::connect(&target(args)).await?;
    match action {
        SourcesAction::List => print!("{}", remote.rows(remote::LIST_SOURCES).await?.render()),
        SourcesAction::Add {
            name,
            kind,
            url,
            options,
            no_validate,
        } => {
            remote
                .execute(&remote::create_source_sql(
                    &name,
                    &kind,
                    &url,
                    &options,
                    !no_validate,
                ))
                .await?;
            println!("CREATE SOURCE {name}");
        }
        SourcesAction::Drop { name, if_exists } => {
            remote
                .execute(&remote::drop_source_sql(&name, if_exists))
                .await?;
            println!("DROP SOURCE {name}");
        }
        SourcesAction::Refresh { name } => {
            remote.execute(&remote::refresh_source_sql(&name)).await?;
            println!("REFRESH SOURCE {name}");
        }
    }
    Ok(())
}

async fn jobs(args: TargetArgs, watch: bool) -> Result<()> {
    use koios::cli::remote::Remote;
    let remote = Remote::connect(&target(args)).await?;
    if watch {
        // The bars (on a terminal), then the table as the jobs ended.
        koios::cli::jobs::watch(&remote).await?;
    }
    print!(
        "{}",
        remote.rows(koios::cli::jobs::LIST_JOBS).await?.render()
    );
    Ok(())
}

async fn status(args: TargetArgs) -> Result<()> {
    use koios::cli::remote::{self, Remote};
    let target = target(args);
    let remote = Remote::connect(&target).await?;
    println!("Koios at {}", target.server);
    print!("{}", remote.rows(remote::SERVER_STATUS).await?.render());
    // Connections, when the server lists its sessions.
    if let Ok(sessions) = remote.rows(remote::CONNECTIONS).await {
        print!("{}", sessions.render());
    }
    print!("{}", remote.rows(remote::LIST_SOURCES).await?.render());
    Ok(())
}
