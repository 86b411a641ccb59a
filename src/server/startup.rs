//! Connection start-up: who may connect, to which database, with which session.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

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
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::cancel::{CancelRegistry, QueryCanceller, Registration};
use crate::engine::{Engine, KOIOS_CATALOG};
use crate::error::codes;
use crate::session::Session;

/// Accepts or refuses a connection and creates its session.
pub struct KoiosStartup {
    pub engine: Arc<Engine>,
    pub session: Arc<OnceLock<Arc<Session>>>,
    pub cancels: Arc<CancelRegistry>,
    pub canceller: Arc<QueryCanceller>,
    pub pids: RandomPidSecretKeyGenerator,
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
        let PgWireFrontendMessage::Startup(startup) = message else {
            // No authentication exchange exists yet, so nothing else may arrive.
            return Err(fatal(
                codes::PROTOCOL_VIOLATION,
                "unexpected message during startup".into(),
            ));
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);

        if !password_less_allowed(client.socket_addr().ip()) {
            return Err(fatal(
                codes::INVALID_AUTHORIZATION,
                format!(
                    "no users are configured, so Koios accepts password-less connections from \
                     loopback only (connection from {})",
                    client.socket_addr().ip()
                ),
            ));
        }

        let metadata = client.metadata();
        let user = metadata
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_else(|| "koios".into());
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

        let session = Arc::new(Session::new(Arc::clone(&self.engine), &database));
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

        let (pid, secret) = self.pids.generate(client);
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
            ("server_version", crate::SERVER_VERSION.to_string()),
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
