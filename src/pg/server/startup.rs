//! Connection start-up: who may connect, to which database, with which session.
//!
//! In order: the connection limit (`53300`), `tls_required` (`28000` for a
//! plain-text connection), then authentication: with users configured every
//! client proves its password with SCRAM-SHA-256 (`28P01` otherwise, the same
//! for an unknown user and a wrong password); without users only loopback
//! clients are let in, password-less. [`KoiosStartup::finish_startup`], shared
//! by both paths, checks the database and creates the session.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, ParameterStatus, PasswordMessageFamily,
};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::cancel::{CancelRegistry, QueryCanceller, Registration};
use super::scram::{self, ScramError, ScramExchange};
use crate::engine::activity::{CancelStatement, SessionInfo};
use crate::engine::config::UserConfig;
use crate::engine::credentials::ScramVerifier;
use crate::engine::error::codes;
use crate::engine::session::Session;
use crate::engine::{Engine, KOIOS_CATALOG};

/// Who may connect; shared by all connections of a server.
pub struct Access {
    users: HashMap<String, ScramVerifier>,
    tls_required: bool,
    /// Key of the stable fake salts shown to unknown users.
    mock_secret: Vec<u8>,
}

impl Access {
    pub fn new(users: &[UserConfig], tls_required: bool) -> Access {
        Access {
            users: users
                .iter()
                .map(|u| (u.name.clone(), u.verifier.clone()))
                .collect(),
            tls_required,
            mock_secret: ScramVerifier::mock_secret(),
        }
    }

    /// Whether clients must authenticate (else: loopback only, no password).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }
}

/// Where a connection is in the SASL exchange.
#[derive(Debug, Default)]
enum Sasl {
    #[default]
    NotStarted,
    /// `AuthenticationSASL` was sent; the client picks the mechanism.
    MechanismsSent { user: String },
    /// The server-first message was sent; the client's proof comes next.
    ServerFirstSent {
        user: String,
        known: bool,
        exchange: Box<ScramExchange>,
    },
}

/// Accepts or refuses a connection and creates its session.
pub struct KoiosStartup {
    engine: Arc<Engine>,
    session: Arc<OnceLock<Arc<Session>>>,
    cancels: Arc<CancelRegistry>,
    canceller: Arc<QueryCanceller>,
    access: Arc<Access>,
    /// False when the connection limit was reached at accept.
    admitted: bool,
    sasl: Mutex<Sasl>,
}

/// With no users configured, only local clients may connect without a password.
/// (An IPv4 loopback address may arrive IPv6-mapped: `::ffff:127.0.0.1`.)
pub fn password_less_allowed(peer: std::net::IpAddr) -> bool {
    peer.to_canonical().is_loopback()
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        codes::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

fn malformed(detail: &str) -> PgWireError {
    fatal(
        codes::PROTOCOL_VIOLATION,
        format!("malformed SCRAM message: {detail}"),
    )
}

/// Startup parameters clients may set that the session keeps.
const SESSION_STARTUP_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "search_path",
    "intervalstyle",
];

/// The one generator of backend pids for the whole process: a CancelRequest
/// finds its connection by pid, so no two connections may share one (a
/// generator per connection gave every connection the same pid, and the
/// latest connection's registration replaced, then removed, the others').
fn backend_keys() -> &'static RandomPidSecretKeyGenerator {
    static KEYS: std::sync::OnceLock<RandomPidSecretKeyGenerator> = std::sync::OnceLock::new();
    KEYS.get_or_init(RandomPidSecretKeyGenerator::default)
}

impl KoiosStartup {
    pub fn new(
        engine: Arc<Engine>,
        session: Arc<OnceLock<Arc<Session>>>,
        cancels: Arc<CancelRegistry>,
        canceller: Arc<QueryCanceller>,
        access: Arc<Access>,
        admitted: bool,
    ) -> Self {
        Self {
            engine,
            session,
            cancels,
            canceller,
            access,
            admitted,
            sasl: Mutex::new(Sasl::NotStarted),
        }
    }

    fn take_sasl(&self) -> Sasl {
        std::mem::take(&mut *self.sasl.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_sasl(&self, state: Sasl) {
        *self.sasl.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// The Startup message: limits, TLS, then trust or the SASL offer.
    async fn on_startup_message<C>(
        &self,
        client: &mut C,
        startup: &pgwire::messages::startup::Startup,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
        if !self.admitted {
            return Err(fatal(
                codes::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already".into(),
            ));
        }
        let peer = client.socket_addr().ip();
        if self.access.tls_required && !client.is_secure() {
            tracing::info!(%peer, "plain-text connection refused: TLS is required");
            let mut info = ErrorInfo::new(
                "FATAL".into(),
                codes::INVALID_AUTHORIZATION.into(),
                format!("TLS is required: plain-text connection from host \"{peer}\" refused"),
            );
            info.hint = Some("Connect with sslmode=require (or verify-full).".into());
            return Err(PgWireError::UserError(Box::new(info)));
        }
        let user = client.metadata().get(METADATA_USER).cloned();
        if !self.access.has_users() {
            if !password_less_allowed(peer) {
                return Err(fatal(
                    codes::INVALID_AUTHORIZATION,
                    format!(
                        "no users are configured, so Koios accepts password-less connections \
                         from loopback only (connection from {peer})"
                    ),
                ));
            }
            return self
                .finish_startup(client, user.unwrap_or_else(|| "koios".into()))
                .await;
        }
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return Err(fatal(
                codes::INVALID_AUTHORIZATION,
                "no user name specified in the startup packet".into(),
            ));
        };
        client.set_state(PgWireConnectionState::AuthenticationInProgress);
        client
            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                vec![scram::MECHANISM.to_string()],
            )))
            .await?;
        self.set_sasl(Sasl::MechanismsSent { user });
        Ok(())
    }

    /// SASLInitialResponse and SASLResponse: the SCRAM-SHA-256 exchange.
    async fn on_password_message<C>(
        &self,
        client: &mut C,
        message: PasswordMessageFamily,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.take_sasl() {
            Sasl::NotStarted => Err(fatal(
                codes::PROTOCOL_VIOLATION,
                "unexpected password message".into(),
            )),
            Sasl::MechanismsSent { user } => {
                let initial = message
                    .into_sasl_initial_response()
                    .map_err(|_| malformed("expected a SASLInitialResponse"))?;
                if initial.auth_method != scram::MECHANISM {
                    return Err(fatal(
                        codes::PROTOCOL_VIOLATION,
                        "client selected an invalid SASL authentication mechanism".into(),
                    ));
                }
                // An unknown user gets a made-up verifier: the exchange runs
                // to the end and fails exactly like a wrong password.
                let (verifier, known) = match self.access.users.get(&user) {
                    Some(verifier) => (verifier.clone(), true),
                    None => (ScramVerifier::mock(&user, &self.access.mock_secret), false),
                };
                let data = initial.data.unwrap_or_default();
                let (server_first, exchange) =
                    scram::server_first(&data, verifier).map_err(|e| match e {
                        ScramError::Malformed(detail) => malformed(detail),
                        ScramError::WrongProof => password_failed(&user),
                    })?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into()),
                    ))
                    .await?;
                self.set_sasl(Sasl::ServerFirstSent {
                    user,
                    known,
                    exchange: Box::new(exchange),
                });
                Ok(())
            }
            Sasl::ServerFirstSent {
                user,
                known,
                exchange,
            } => {
                let response = message
                    .into_sasl_response()
                    .map_err(|_| malformed("expected a SASLResponse"))?;
                let peer = client.socket_addr().ip();
                match exchange.server_final(&response.data) {
                    Ok(server_final) if known => {
                        client
                            .feed(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into()),
                            ))
                            .await?;
                        tracing::debug!(%user, %peer, "authenticated with SCRAM-SHA-256");
                        self.finish_startup(client, user).await
                    }
                    Ok(_) | Err(ScramError::WrongProof) => {
                        // Only the server log says which part was wrong.
                        let detail = if known {
                            "password does not match"
                        } else {
                            "no such user"
                        };
                        tracing::info!(%user, %peer, detail, "password authentication failed");
                        Err(password_failed(&user))
                    }
                    Err(ScramError::Malformed(detail)) => Err(malformed(detail)),
                }
            }
        }
    }

    /// Everything after authentication, for both the password-less and the
    /// SCRAM path: the database check, the session, cancel registration,
    /// AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery.
    async fn finish_startup<C>(&self, client: &mut C, user: String) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let metadata = client.metadata();
        let database = metadata
            .get(METADATA_DATABASE)
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| user.clone());
        // `psql -U koios` (database defaults to the user name) and clients that
        // ask for `postgres` land in the built-in catalog.
        let database = if database == "postgres" && !self.engine.has_database("postgres") {
            KOIOS_CATALOG.to_string()
        } else {
            database
        };
        if !self.engine.has_database(&database) {
            return Err(fatal(
                codes::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            ));
        }

        // The pid first: the session is listed (`pg_stat_activity`) by it.
        let (pid, secret) = backend_keys().generate(client);
        let session = Arc::new(Session::for_client(
            Arc::clone(&self.engine),
            SessionInfo {
                pid,
                user: user.clone(),
                database: database.clone(),
                client_addr: Some(client.socket_addr()),
            },
        ));
        // `pg_cancel_backend` fires the same token as a CancelRequest.
        session
            .activity()
            .set_canceller(Arc::clone(&self.canceller) as Arc<dyn CancelStatement>);
        let lower: HashMap<String, String> = client
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        for name in SESSION_STARTUP_PARAMETERS {
            if let Some(value) = lower.get(*name) {
                session.set_startup_parameter(name, value);
            }
        }
        let _ = self.session.set(Arc::clone(&session));

        client.set_pid_and_secret_key(pid, secret.clone());
        // Kept in the connection's extensions: dropped (and unregistered)
        // when the connection ends.
        let registration = self
            .cancels
            .register(pid, secret.clone(), Arc::clone(&self.canceller));
        client
            .session_extensions()
            .insert::<Registration>(registration);

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        let settings = session.settings();
        let reported = [
            (
                "server_version",
                crate::engine::settings::SERVER_VERSION.to_string(),
            ),
            ("server_encoding", "UTF8".into()),
            (
                "client_encoding",
                settings
                    .get("client_encoding")
                    .unwrap_or("UTF8")
                    .to_string(),
            ),
            (
                "DateStyle",
                settings.get("datestyle").unwrap_or("ISO, MDY").to_string(),
            ),
            ("TimeZone", settings.time_zone().to_string()),
            ("IntervalStyle", "postgres".into()),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("is_superuser", "on".into()),
            ("session_authorization", user),
            (
                "application_name",
                settings.get("application_name").unwrap_or("").to_string(),
            ),
            ("default_transaction_read_only", "off".into()),
            ("in_hot_standby", "off".into()),
        ];
        for (name, value) in reported {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.into(),
                    value,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid, secret,
            )))
            .await?;
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        tracing::debug!(%database, "session started");
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for KoiosStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                self.on_startup_message(client, &startup).await
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.on_password_message(client, message).await
            }
            _ => Err(fatal(
                codes::PROTOCOL_VIOLATION,
                "unexpected message during startup".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::password_less_allowed;

    #[test]
    fn only_loopback_peers_connect_without_a_password() {
        for local in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"] {
            assert!(password_less_allowed(local.parse().expect("ip")), "{local}");
        }
        for remote in [
            "10.0.0.5",
            "192.168.1.2",
            "8.8.8.8",
            "::ffff:10.1.1.1",
            "fe80::1",
        ] {
            assert!(
                !password_less_allowed(remote.parse().expect("ip")),
                "{remote}"
            );
        }
    }
}
