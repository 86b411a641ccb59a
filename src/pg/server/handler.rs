//! Simple and extended query protocol handlers for one connection.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use futures::SinkExt;
use futures::stream::BoxStream;
use futures::{Sink, StreamExt};
use pgwire::api::DEFAULT_NAME;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{
    DataRow, FieldDescription, NoData, ParameterDescription, RowDescription,
};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL,
    TARGET_TYPE_BYTE_STATEMENT,
};

use super::cancel::{CancelRegistry, QueryCanceller, QueryToken};
use super::cancellable::{UntilCancelled, cancellable};
use super::deferred::Deferred;
use super::encode::{conform, encode_batch, field_infos};
use super::errors::{to_pg_error, user_error};
use super::metered::{MeteredRows, QueryMeter};
use super::startup::{Access, KoiosStartup};
use crate::engine::Engine;
use crate::engine::activity::StatementGuard;
use crate::engine::error::codes;
use crate::engine::notices::Severity;
use crate::engine::session::{Output, Prepared, Session};
use crate::engine::settings::{Settings, parse_time_zone};
use crate::pg::types::arrow_type;
use crate::pg::types::params::{cast_param_type, decode_param, describe_param_type};
use crate::pg::types::text::TextContext;

/// Everything one connection needs; created per accepted socket.
pub struct ConnectionHandlers {
    startup: Arc<KoiosStartup>,
    cancels: Arc<CancelRegistry>,
    handler: Arc<QueryHandler>,
}

impl ConnectionHandlers {
    /// `admitted` is false when the connection limit is reached: the client
    /// is then refused at start-up (a CancelRequest is still served).
    pub fn new(
        engine: Arc<Engine>,
        cancels: Arc<CancelRegistry>,
        access: Arc<Access>,
        admitted: bool,
    ) -> Self {
        let session = Arc::new(OnceLock::new());
        let canceller = Arc::new(QueryCanceller::default());
        let handler = Arc::new(QueryHandler {
            parser: Arc::new(KoiosParser {
                session: Arc::clone(&session),
            }),
            session: Arc::clone(&session),
            canceller: Arc::clone(&canceller),
        });
        let startup = Arc::new(KoiosStartup::new(
            engine,
            session,
            Arc::clone(&cancels),
            canceller,
            access,
            admitted,
        ));
        Self {
            startup,
            cancels,
            handler,
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.handler)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.handler)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancels)
    }
}

fn session_of(cell: &OnceLock<Arc<Session>>) -> PgWireResult<Arc<Session>> {
    cell.get().cloned().ok_or_else(|| {
        user_error(
            codes::PROTOCOL_VIOLATION,
            "query before the session started",
        )
    })
}

/// A statement stored by Parse: the plan plus its parameter and row types.
#[derive(Debug, Clone)]
pub struct KoiosStatement {
    prepared: Prepared,
    /// Wire type of each parameter (declared by the client, else inferred).
    param_types: Vec<Type>,
    schema: SchemaRef,
    /// The statement's text, shown while it runs (`pg_stat_activity`).
    sql: Arc<str>,
}

/// Plans statements at Parse time, so Describe can answer with real types.
pub struct KoiosParser {
    session: Arc<OnceLock<Arc<Session>>>,
}

#[async_trait]
impl QueryParser for KoiosParser {
    type Statement = KoiosStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<KoiosStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(&self.session)?;
        let mut statements = session.parse(sql).map_err(|e| to_pg_error(&e))?;
        if statements.len() > 1 {
            return Err(user_error(
                codes::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let declared: Vec<Option<Type>> = types
            .iter()
            .map(|t| t.clone().filter(|t| *t != Type::UNKNOWN))
            .collect();
        let client_types: Vec<Option<DataType>> = declared
            .iter()
            .map(|t| t.as_ref().and_then(arrow_type))
            .collect();
        let prepared = session
            .prepare(&statement, &client_types)
            .await
            .map_err(|e| to_pg_error(&e))?;
        let inferred = prepared.param_types();
        let cast: Vec<Option<Type>> = prepared
            .param_casts()
            .iter()
            .map(|written| written.iter().rev().find_map(|t| cast_param_type(t)))
            .collect();
        let param_types = inferred
            .iter()
            .enumerate()
            .map(|(i, dt)| {
                declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| cast.get(i).cloned().flatten())
                    .unwrap_or_else(|| describe_param_type(dt.as_ref()))
            })
            .collect();
        let schema = prepared.output_schema();
        Ok(Some(KoiosStatement {
            prepared,
            param_types,
            schema,
            sql: Arc::from(sql),
        }))
    }

    fn get_parameter_types(&self, stmt: &KoiosStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &KoiosStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.cloned().unwrap_or(Format::UnifiedText);
        check_format_count(&format, stmt.schema.fields().len())?;
        Ok(field_infos(&stmt.schema, &format))
    }
}

/// A result-format list must name one format for all columns or one each;
/// anything else is a protocol error (and would index out of bounds).
fn check_format_count(format: &Format, columns: usize) -> PgWireResult<()> {
    match format {
        Format::Individual(codes) if codes.len() != columns => Err(user_error(
            codes::PROTOCOL_VIOLATION,
            format!("{} format codes given for {columns} columns", codes.len()),
        )),
        _ => Ok(()),
    }
}

/// Answers queries for one connection.
pub struct QueryHandler {
    parser: Arc<KoiosParser>,
    session: Arc<OnceLock<Arc<Session>>>,
    canceller: Arc<QueryCanceller>,
}

impl QueryHandler {
    /// Turns an execution output (or its error) into a pgwire response;
    /// `meter` records the statement's end: at once for a statement
    /// without rows, when its last row is sent for one with rows.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        session: &Session,
        output: datafusion::error::Result<Output>,
        format: &Format,
        expected: Option<SchemaRef>,
        buffer: bool,
        running: (QueryToken, StatementGuard),
        meter: QueryMeter,
    ) -> PgWireResult<Response> {
        let mut meter = Some(meter);
        let response = match output {
            Ok(output) => {
                self.respond_with(
                    session, output, format, expected, buffer, running, &mut meter,
                )
                .await
            }
            Err(e) => Err(to_pg_error(&e)),
        };
        if let Some(mut meter) = meter {
            meter.finish(&response);
        }
        response
    }

    /// [`QueryHandler::respond`] for an output: `meter` is taken by the
    /// rows' stream, if there are rows.
    #[allow(clippy::too_many_arguments)]
    async fn respond_with(
        &self,
        session: &Session,
        output: Output,
        format: &Format,
        expected: Option<SchemaRef>,
        buffer: bool,
        // The statement's cancel token, and its mark in the session's
        // activity (kept until its rows are sent).
        (token, statement): (QueryToken, StatementGuard),
        meter: &mut Option<QueryMeter>,
    ) -> PgWireResult<Response> {
        Ok(match output {
            Output::TransactionStart => {
                session.activity().set_in_transaction(true);
                Response::TransactionStart(Tag::new("BEGIN"))
            }
            Output::TransactionEnd(tag) => {
                session.activity().set_in_transaction(false);
                Response::TransactionEnd(Tag::new(&tag))
            }
            Output::Done { tag, rows } => {
                let mut t = Tag::new(&tag);
                if tag == "INSERT" {
                    t = t.with_oid(0);
                }
                if let Some(rows) = rows {
                    t = t.with_rows(rows);
                }
                Response::Execution(t)
            }
            Output::Rows {
                schema,
                stream,
                tag,
                data_rows,
            } => {
                // Rows the connector writes straight in the client's
                // formats, when the client reads the types the plan has.
                let same_types = expected.as_ref().is_none_or(|expected| {
                    expected.fields().len() == schema.fields().len()
                        && expected
                            .fields()
                            .iter()
                            .zip(schema.fields())
                            .all(|(a, b)| a.data_type() == b.data_type())
                });
                let binary = (0..schema.fields().len())
                    .map(|i| format.is_binary(i))
                    .collect();
                let data_rows = data_rows.filter(|_| same_types).map(|start| start(binary));
                let schema = expected.unwrap_or(schema);
                check_format_count(format, schema.fields().len())?;
                let fields = Arc::new(field_infos(&schema, format));
                let encode_fields = Arc::clone(&fields);
                let rows: BoxStream<'static, PgWireResult<DataRow>> = match data_rows {
                    Some(data_rows) => {
                        let columns = schema.fields().len() as i16;
                        data_rows
                            .map(move |row| {
                                row.map(|body| DataRow::new(body, columns))
                                    .map_err(|e| to_pg_error(&e))
                            })
                            .boxed()
                    }
                    None => {
                        let ctx = TextContext {
                            time_zone: session
                                .with_settings(|s| parse_time_zone(s.time_zone()))
                                .unwrap_or_else(|| TextContext::default().time_zone),
                        };
                        stream
                            .map(move |batch| {
                                match batch
                                    .and_then(|b| conform(b, &schema))
                                    .and_then(|b| encode_batch(&b, &encode_fields, &ctx))
                                {
                                    Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                                    Err(e) => vec![Err(to_pg_error(&e))],
                                }
                            })
                            .flat_map(futures::stream::iter)
                            .boxed()
                    }
                };
                let rows = UntilCancelled {
                    rows: Some(rows),
                    token,
                    waiting: None,
                    statement: Some(statement),
                };
                // Outside `UntilCancelled`, so a cancel counts as one.
                let rows: BoxStream<'static, PgWireResult<DataRow>> = match meter.take() {
                    Some(meter) => MeteredRows::new(rows.boxed(), meter).boxed(),
                    None => rows.boxed(),
                };
                let mut response = if buffer {
                    // Later statements of the same simple query must not run
                    // before this one's rows are read.
                    let mut collected = Vec::new();
                    let mut rows = std::pin::pin!(rows);
                    while let Some(row) = rows.next().await {
                        collected.push(Ok(row?));
                    }
                    QueryResponse::new(fields, futures::stream::iter(collected))
                } else {
                    QueryResponse::new(fields, rows)
                };
                response.set_command_tag(&tag);
                Response::Query(response)
            }
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::transaction::before_statement(self.session.get(), client);
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.session)?;
        let responses = with_notices(&session, client, self.simple_query(&session, query)).await?;
        send_notices(&session, client).await?;
        responses
    }
}

/// How often a running statement's notices are sent.
const NOTICES_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `work` (a statement of either protocol), sending the notices the
/// session records while it runs every [`NOTICES_EVERY`]: a statement that
/// runs long (a migration waited for) tells its progress as it goes, not
/// only at its end.
async fn with_notices<C, T>(
    session: &Session,
    client: &mut C,
    work: impl std::future::Future<Output = T>,
) -> PgWireResult<T>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            () = tokio::time::sleep(NOTICES_EVERY) => {
                if send_notices(session, client).await? {
                    client.flush().await?;
                }
            }
        }
    }
}

/// Sends the warnings and notices the session's statements left (a
/// striped table's member left out, a migration's progress, …) as
/// NoticeResponse messages; whether there were any.
async fn send_notices<C>(session: &Session, client: &mut C) -> PgWireResult<bool>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let pending = session.take_notices();
    let any = !pending.is_empty();
    for (severity, message) in pending {
        let (word, code) = match severity {
            Severity::Warning => ("WARNING", "01000"),
            Severity::Notice => ("NOTICE", "00000"),
        };
        let notice = pgwire::error::ErrorInfo::new(word.into(), code.into(), message);
        client
            .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
            .await?;
    }
    Ok(any)
}

impl QueryHandler {
    /// A simple query's statements run, their responses in order.
    async fn simple_query(
        &self,
        session: &Arc<Session>,
        query: &str,
    ) -> PgWireResult<Vec<Response>> {
        let session = Arc::clone(session);
        let meter = QueryMeter::start(session.engine().metrics());
        // A query this session ran before, or one differing from an earlier
        // one only in the values it compares with: its plan, without parsing.
        let fast = session
            .run_cached(query)
            .or_else(|| session.run_template(query).map(Ok));
        let Some(output) = fast else {
            meter.discard();
            return self.run_statements(&session, query).await;
        };
        // The token first: a statement shown as running can be cancelled
        // (`pg_cancel_backend` fires the current token).
        let token = self
            .canceller
            .start_query(session.with_settings(Settings::statement_timeout));
        let statement = session.activity().begin(query);
        let format = &Format::UnifiedText;
        let response = self
            .respond(
                &session,
                output,
                format,
                None,
                false,
                (token, statement),
                meter,
            )
            .await;
        let mut responses = Vec::with_capacity(1);
        add_response(&mut responses, response)?;
        Ok(responses)
    }
}

impl QueryHandler {
    /// The statements of a simple query that has no cached plan: parsed,
    /// then each planned and run in turn.
    async fn run_statements(
        &self,
        session: &Arc<Session>,
        query: &str,
    ) -> PgWireResult<Vec<Response>> {
        let metrics = session.engine().metrics();
        let statements = match session.parse(query) {
            Ok(s) => s,
            Err(e) => {
                let error = Err(to_pg_error(&e));
                QueryMeter::start(metrics).finish(&error);
                return error;
            }
        };
        let count = statements.len();
        let mut responses = Vec::with_capacity(count);
        for (i, statement) in statements.iter().enumerate() {
            // Each statement has its own token and timeout, as in PostgreSQL
            // 13+ (a `SET statement_timeout` applies to the next statement).
            let meter = QueryMeter::start(metrics);
            let token = self
                .canceller
                .start_query(session.with_settings(Settings::statement_timeout));
            // Shown as running with the whole query string, as PostgreSQL does.
            let activity = session.activity().begin(query);
            let result = cancellable(&token, async {
                if count == 1 {
                    return session.run_text(statement, query).await;
                }
                let prepared = session.prepare(statement, &[]).await?;
                session.execute(&prepared, Vec::new()).await
            })
            .await;
            let last = i + 1 == count;
            let format = &Format::UnifiedText;
            let response = match result {
                Ok(output) => {
                    self.respond(
                        session,
                        Ok(output),
                        format,
                        None,
                        !last,
                        (token.clone(), activity),
                        meter,
                    )
                    .await
                }
                Err(e) => {
                    let error = Err(e);
                    let mut meter = meter;
                    meter.finish(&error);
                    error
                }
            };
            // Statements after a failed one are not run, as in PostgreSQL.
            if !add_response(&mut responses, response)? {
                break;
            }
        }
        Ok(responses)
    }
}

/// Adds one statement's response to a simple query's; an error the client
/// should see becomes its response. Returns whether the statement succeeded.
fn add_response(
    responses: &mut Vec<Response>,
    response: PgWireResult<Response>,
) -> PgWireResult<bool> {
    match response {
        Ok(response) => {
            responses.push(response);
            Ok(true)
        }
        Err(PgWireError::UserError(info)) => {
            responses.push(Response::Error(info));
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = KoiosStatement;
    type QueryParser = KoiosParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    // Parse, Bind, Describe and Execute answer without flushing: their
    // answers go out together at the Sync (or Flush) that follows, as
    // PostgreSQL's do (see `deferred`).

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client
                .portal_store()
                .put_empty_statement(message.name.as_deref().unwrap_or(DEFAULT_NAME)),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(user_error(
                        codes::PROTOCOL_VIOLATION,
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{}\" requires 0",
                            message.parameters.len(),
                            message.statement_name.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                client
                    .portal_store()
                    .put_empty_portal(message.portal_name.as_deref().unwrap_or(DEFAULT_NAME));
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::transaction::before_statement(self.session.get(), client);
        let executed = self._on_execute(&mut Deferred::new(client), message).await;
        // A COPY FROM STDIN waits for the client's data: its CopyInResponse
        // cannot wait for a Sync.
        if matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.flush().await?;
        }
        executed
    }

    /// Like pgwire's default, but a statement without result columns answers
    /// `NoData` after its parameter description, as PostgreSQL does (pgwire
    /// would send an empty RowDescription when the statement has parameters).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (params, fields) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let response = self.do_describe_statement(client, &stmt).await?;
                    (Some(response.parameters), response.fields)
                }
                Some(Entry::Empty) => (Some(Vec::new()), Vec::new()),
                None => return Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    (None, self.do_describe_portal(client, &portal).await?.fields)
                }
                Some(Entry::Empty) => (None, Vec::new()),
                // A cursor opened with SQL `DECLARE` is also a portal, as in
                // PostgreSQL: psycopg's server-side cursors describe it by name.
                None => match session_of(&self.session)?.cursor_schema(name).await {
                    Some(schema) => (None, field_infos(&schema, &Format::UnifiedText)),
                    None => return Err(PgWireError::PortalNotFound(name.to_owned())),
                },
            },
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        if let Some(params) = params {
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(params.iter().map(|t| t.oid()).collect()),
                ))
                .await?;
        }
        if fields.is_empty() {
            client
                .feed(PgWireBackendMessage::NoData(NoData::new()))
                .await?;
        } else {
            let description =
                RowDescription::new(fields.iter().map(FieldDescription::from).collect());
            client
                .feed(PgWireBackendMessage::RowDescription(description))
                .await?;
        }
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<KoiosStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = KoiosStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        Ok(DescribeStatementResponse::new(
            stmt.param_types.clone(),
            field_infos(&stmt.schema, &Format::UnifiedText),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<KoiosStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = KoiosStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement.statement;
        check_format_count(&target.result_column_format, stmt.schema.fields().len())?;
        Ok(DescribePortalResponse::new(field_infos(
            &stmt.schema,
            &target.result_column_format,
        )))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<KoiosStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = KoiosStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.session)?;
        let stmt = &portal.statement.statement;
        let expected = stmt.param_types.len();
        if portal.parameters.len() != expected {
            return Err(user_error(
                codes::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {expected}",
                    portal.parameters.len()
                ),
            ));
        }
        check_format_count(&portal.parameter_format, expected)?;
        let targets = stmt.prepared.param_types();
        let mut params = Vec::with_capacity(expected);
        for (i, bytes) in portal.parameters.iter().enumerate() {
            let value = decode_param(
                i,
                bytes.as_deref(),
                portal.parameter_format.is_binary(i),
                &stmt.param_types[i],
                targets.get(i).and_then(|t| t.as_ref()),
            )
            .map_err(|e| user_error(codes::INVALID_TEXT_REPRESENTATION, e.to_string()))?;
            params.push(value);
        }
        let mut meter = QueryMeter::start(session.engine().metrics());
        let token = self
            .canceller
            .start_query(session.with_settings(Settings::statement_timeout));
        let activity = session.activity().begin(&stmt.sql);
        let output = with_notices(
            &session,
            client,
            cancellable(&token, session.execute(&stmt.prepared, params)),
        )
        .await?;
        send_notices(&session, client).await?;
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                let error = Err(error);
                meter.finish(&error);
                return error;
            }
        };
        self.respond(
            &session,
            Ok(output),
            &portal.result_column_format,
            Some(Arc::clone(&stmt.schema)),
            false,
            (token, activity),
            meter,
        )
        .await
    }
}
