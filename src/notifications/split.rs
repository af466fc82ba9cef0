//! `agora split notifications`: moves the e-mails of a running shared installation onto the
//! notifications service's own database, the way GitLab moved its `ci` tables out of its main
//! database, and back with `--rollback`:
//!
//! 1. **copy** while Agora runs: a trigger starts listing every e-mail and inbox row written from
//!    now on, then every row is copied (upserted) to the service's database;
//! 2. **verify** the copy: counts and a checksum per status on both sides, leaving out the rows
//!    listed as changed since (the cutover copies those again);
//! 3. **cut over** in one transaction of the shared database: stop new in-process e-mail
//!    deliveries (the subscription goes, the pending deliveries are handed to the broker relay,
//!    which publishes their events into the service's queue), lock the old tables, copy the rows
//!    that changed, verify everything again, and install the write lock (a trigger that refuses
//!    writes); then make the service the holder of the e-mails of record, so it starts consuming;
//! 4. **report** the write window: from the locks taken to the cutover committed, no e-mail could
//!    be recorded anywhere.
//!
//! Where the move stands is kept in `notifications_move` (shared database) and
//! `notifications_ownership` (service database), so a run killed at any point is run again: it
//! says where it resumes, and every step is idempotent (upserts; a transaction that died did
//! nothing). No e-mail is lost or sent twice across the move: each is one row per event (unique
//! event id) with a Message-ID derived from the event, the service's inbox drops redelivered
//! messages, and at every moment exactly one database accepts e-mail writes (the other refuses
//! them: the old table's trigger, or the service's ownership fence).
//!
//! `--contract` drops the old tables once the move is final (a migration of its own).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::upsert::excluded;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use uuid::Uuid;

use super::service::{self, Holder};
use crate::config::Config;
use crate::events::{BROKER_RELAY, ORDER_EMAILS, ORDER_EMAILS_SUBSCRIPTION, Subscription};
use crate::kernel::Module;
use crate::outbox::handover;
use crate::schema::{notifications, notifications_delta, notifications_inbox, notifications_move};

/// The migration `--contract` applies to the shared database: the old tables dropped.
pub const CONTRACT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("src/notifications/contract");

/// Rows per copied batch.
const BATCH: i64 = 500;
/// How long the cutover waits for a lock before giving up (and leaving everything as it was).
const CUTOVER_LOCK_TIMEOUT: &str = "10s";
/// What an in-process e-mail delivery handed over at the cutover says.
const HANDED_OVER: &str = "handed over to the notifications service (agora split notifications)";

/// For the tests of a command killed mid-way: `AGORA_SPLIT_FAILPOINT=<point>` makes the command
/// say `paused at <point>` and wait there, a minute, to be killed.
const FAILPOINT_VARIABLE: &str = "AGORA_SPLIT_FAILPOINT";

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Connect(#[from] crate::db::SetupError),
    #[error("the copy differs from the shared table: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Refused(String),
}

/// Where a move stands, as `notifications_move` keeps it.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = notifications_move)]
pub struct MoveState {
    pub step: String,
    pub started_at: DateTime<Utc>,
    pub copied_at: Option<DateTime<Utc>>,
    pub copied_rows: Option<i64>,
    pub cut_over_at: Option<DateTime<Utc>>,
    pub caught_up_rows: Option<i64>,
    pub write_window_ms: Option<f64>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub contracted_at: Option<DateTime<Utc>>,
}

impl MoveState {
    /// Whether the e-mails of record left the shared database (cut over, or contracted).
    pub fn has_cut_over(&self) -> bool {
        matches!(self.step.as_str(), "cut_over" | "contracted")
    }

    pub fn describe(&self) -> String {
        match (self.step.as_str(), self.cut_over_at) {
            ("contracted", _) => "moved and contracted: the old tables are gone".to_owned(),
            (_, Some(at)) => format!(
                "cut over at {} UTC, write window {:.1} ms",
                at.format("%Y-%m-%d %H:%M:%S"),
                self.write_window_ms.unwrap_or_default()
            ),
            (step, None) => format!("move at step {step}"),
        }
    }
}

/// Where the move stands; `None` if none ever started.
pub fn state(conn: &mut PgConnection) -> diesel::QueryResult<Option<MoveState>> {
    crate::as_module!(conn, Module::Notifications);
    notifications_move::table.select(MoveState::as_select()).first(conn).optional()
}

/// Every column of an e-mail, to copy it whole between the two databases.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
struct EmailRow {
    id: Uuid,
    event_id: i64,
    order_id: Uuid,
    kind: String,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    message_id: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    round_attempts: i32,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications_inbox)]
struct InboxRow {
    event_id: i64,
    event_type: String,
    received_at: DateTime<Utc>,
}

/// The run's report, printed a line at a time as each step ends, so that an operator watching a
/// move (or a run killed mid-way) sees how far it got.
struct Report;

impl Report {
    fn say(&mut self, line: impl Into<String>) {
        println!("{}", line.into());
    }
}

/// The two databases of the move.
struct Move {
    shared: PgConnection,
    service: PgConnection,
    config: Config,
}

/// `agora split notifications`: runs (or resumes) the move to the split topology.
pub fn split(config: &Config) -> Result<(), SplitError> {
    let mut report = Report;
    let mut this = Move::open(config)?;
    let state = this.state()?;
    let holder_is_service = this.service_holds()?;
    match state.as_ref().map(|state| state.step.as_str()) {
        Some("contracted") => {
            report.say("notifications moved and contracted already: nothing to do");
            return Ok(());
        }
        Some("cut_over") if holder_is_service => {
            report.say(format!(
                "notifications moved already ({}): nothing to do",
                state.as_ref().map(MoveState::describe).unwrap_or_default()
            ));
            return Ok(());
        }
        Some("cut_over") if this.service_write_locked()? => {
            return Err(SplitError::Refused(
                "a rollback is under way (the service's tables are write-locked): finish it with `agora split \
                 notifications --rollback`"
                    .into(),
            ));
        }
        Some("cut_over") => {
            report.say("resuming after the cutover: handing consumption to the service");
            this.hand_to_service(&mut report)?;
            return Ok(());
        }
        Some("copied") => report.say("resuming: the copy was made and verified; verifying it again, then cutting over"),
        Some("copying") => {
            report.say("resuming: step 1 was interrupted; copying again (rows already copied are overwritten)")
        }
        Some("rolled_back") => report.say("a move was rolled back before: starting it again"),
        _ => report.say("moving notifications to the database of its service"),
    }
    let resuming_copied = state.as_ref().is_some_and(|state| state.step == "copied");
    if !resuming_copied {
        if holder_is_service {
            this.refuse_if_service_holds_emails()?;
        }
        this.begin(&mut report)?;
        this.copy_all(&mut report)?;
    }
    if let Err(error) = this.verify_copy(&mut report) {
        return Err(this.start_over_after(error, &mut report));
    }
    failpoint("copied");
    if let Err(error) = this.cut_over(&mut report) {
        return Err(this.start_over_after(error, &mut report));
    }
    this.hand_to_service(&mut report)?;
    Ok(())
}

/// `agora split notifications --rollback`: brings the e-mails back to the shared database,
/// including those the service recorded after the cutover, and lifts the write lock.
pub fn rollback(config: &Config) -> Result<(), SplitError> {
    let mut report = Report;
    let mut this = Move::open(config)?;
    let Some(state) = this.state()? else {
        return Err(SplitError::Refused("no move was started: there is nothing to roll back".into()));
    };
    match state.step.as_str() {
        "contracted" => {
            return Err(SplitError::Refused(
                "the old tables were dropped (--contract): the move can no longer be rolled back".into(),
            ));
        }
        "rolled_back" => {
            report.say("rolled back already: nothing to do");
            return Ok(());
        }
        "copying" | "copied" => {
            // Never cut over: the shared database still holds the e-mails. The queue declared for
            // the service goes first, then every e-mail event since the move began that has no
            // e-mail gets an in-process delivery: whatever the queue held is written here.
            this.delete_queue(&mut report);
            let started = state.started_at;
            let revived = this.shared.transaction(|conn| -> Result<usize, SplitError> {
                conn.batch_execute(DROP_TRACKING)?;
                let revived = revive_missing_emails(conn, started)?;
                diesel::update(notifications_move::table)
                    .set((
                        notifications_move::step.eq("rolled_back"),
                        notifications_move::rolled_back_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
                Ok(revived)
            })?;
            report.say(format!(
                "the move had not cut over (step {}): stopped it; the shared database holds the e-mails as before \
                 ({revived} e-mails of events since it began queued in process)",
                state.step
            ));
            return Ok(());
        }
        _ => {}
    }
    if this.service_write_locked()? {
        report.say("resuming the rollback: the service is fenced off already");
    } else {
        this.fence_service()?;
        report.say(
            "rollback 1: the service no longer holds the e-mails: its tables are write-locked and it stopped consuming",
        );
    }
    failpoint("rollback-fenced");
    this.copy_back(&state, &mut report)?;
    this.delete_queue(&mut report);
    report.say(
        "rolled back: restart agora without AGORA_NOTIFICATIONS_URL; the e-mails are in the shared database again, \
         and those of events the service had not taken are written in process",
    );
    Ok(())
}

/// `agora split notifications --contract`: drops the old tables, once the move is final.
pub fn contract(config: &Config) -> Result<(), SplitError> {
    let mut report = Report;
    let mut this = Move::open(config)?;
    let state = this.state()?;
    match state.as_ref().map(|state| state.step.as_str()) {
        Some("contracted") => {
            report.say("contracted already: nothing to do");
            return Ok(());
        }
        Some("cut_over") if this.service_holds()? => {}
        _ => {
            return Err(SplitError::Refused(
                "the move is not cut over: run `agora split notifications` first (contracting drops the shared \
                 database's e-mails)"
                    .into(),
            ));
        }
    }
    let applied = this
        .shared
        .run_pending_migrations(CONTRACT_MIGRATIONS)
        .map_err(|error| SplitError::Setup(format!("cannot apply the contract migration: {error}")))?
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    diesel::update(notifications_move::table)
        .set((notifications_move::step.eq("contracted"), notifications_move::contracted_at.eq(diesel::dsl::now)))
        .execute(&mut this.shared)?;
    report.say(format!(
        "contracted: applied {}; the shared database no longer has notifications' tables, and the move cannot be \
         rolled back",
        applied.join(", ")
    ));
    Ok(())
}

const INSTALL_TRACKING: &str = "
    DROP TRIGGER IF EXISTS notifications_move_track ON notifications;
    DROP TRIGGER IF EXISTS notifications_inbox_move_track ON notifications_inbox;
    CREATE TRIGGER notifications_move_track AFTER INSERT OR UPDATE ON notifications
        FOR EACH ROW EXECUTE FUNCTION notifications_move_track('id');
    CREATE TRIGGER notifications_inbox_move_track AFTER INSERT OR UPDATE ON notifications_inbox
        FOR EACH ROW EXECUTE FUNCTION notifications_move_track('event_id');";

const DROP_TRACKING: &str = "
    DROP TRIGGER IF EXISTS notifications_move_track ON notifications;
    DROP TRIGGER IF EXISTS notifications_inbox_move_track ON notifications_inbox;
    TRUNCATE notifications_delta;";

const WRITE_LOCK: &str = "
    DROP TRIGGER IF EXISTS notifications_write_lock ON notifications;
    DROP TRIGGER IF EXISTS notifications_inbox_write_lock ON notifications_inbox;
    CREATE TRIGGER notifications_write_lock BEFORE INSERT OR UPDATE OR DELETE ON notifications
        FOR EACH ROW EXECUTE FUNCTION notifications_refuse_writes();
    CREATE TRIGGER notifications_inbox_write_lock BEFORE INSERT OR UPDATE OR DELETE ON notifications_inbox
        FOR EACH ROW EXECUTE FUNCTION notifications_refuse_writes();";

const LIFT_WRITE_LOCK: &str = "
    DROP TRIGGER IF EXISTS notifications_write_lock ON notifications;
    DROP TRIGGER IF EXISTS notifications_inbox_write_lock ON notifications_inbox;";

impl Move {
    fn open(config: &Config) -> Result<Move, SplitError> {
        let settings = service::ServiceSettings::from_config(config).map_err(SplitError::Setup)?;
        crate::db::prepare_database(&config.direct_database_url)?;
        service::prepare_database(&settings.database_url)?;
        let shared = crate::db::connect(&config.direct_database_url)?;
        let service = crate::db::connect(&settings.database_url)?;
        Ok(Move { shared, service, config: config.clone() })
    }

    fn state(&mut self) -> Result<Option<MoveState>, SplitError> {
        Ok(notifications_move::table.select(MoveState::as_select()).first(&mut self.shared).optional()?)
    }

    fn service_holds(&mut self) -> Result<bool, SplitError> {
        Ok(self.service.transaction(service::holds_records)?)
    }

    fn service_write_locked(&mut self) -> Result<bool, SplitError> {
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        let found: Found = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'notifications_write_lock') AS found",
        )
        .get_result(&mut self.service)?;
        Ok(found.found)
    }

    /// A service that already holds e-mails of its own (a fresh split installation) is not a
    /// copy target: moving onto it would mix two installations' e-mails.
    fn refuse_if_service_holds_emails(&mut self) -> Result<(), SplitError> {
        let emails: i64 = notifications::table.count().get_result(&mut self.service)?;
        if emails > 0 {
            return Err(SplitError::Refused(format!(
                "the service's database holds {emails} e-mails of its own already: move onto an empty one"
            )));
        }
        Ok(())
    }

    /// Step 1's start: the service stands aside (it must not consume while the copy is made),
    /// the queue exists (so that events from now on wait there for the service), and every row
    /// written from now on is listed.
    fn begin(&mut self, report: &mut Report) -> Result<(), SplitError> {
        let broker = self.config.broker.clone().ok_or_else(|| {
            SplitError::Setup("AGORA_BROKER_URL is needed: the service takes its events from the broker".into())
        })?;
        self.relay_subscribed()?;
        self.service.transaction(|conn| {
            service::set_holder(conn, Holder::Shared)?;
            conn.batch_execute(LIFT_WRITE_LOCK)
        })?;
        super::declare_queue_now(&broker)
            .map_err(|error| SplitError::Setup(format!("cannot declare the service's queue on the broker: {error}")))?;
        self.shared.transaction(|conn| {
            // CREATE TRIGGER waits for the writes in flight: every write committed after this
            // transaction is listed, and the copy below, begun after it, sees every one before.
            conn.batch_execute(INSTALL_TRACKING)?;
            diesel::insert_into(notifications_move::table)
                .values(notifications_move::step.eq("copying"))
                .on_conflict(notifications_move::only_row)
                .do_update()
                .set((
                    notifications_move::step.eq("copying"),
                    notifications_move::started_at.eq(diesel::dsl::now),
                    notifications_move::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
        })?;
        report.say(format!(
            "step 1: changes to the e-mails are tracked; events wait for the service in the queue {}",
            broker.notifications_queue
        ));
        Ok(())
    }

    /// The cutover hands the in-process e-mails to the relay: it must be publishing them.
    fn relay_subscribed(&mut self) -> Result<(), SplitError> {
        let relaying = Subscription { handler: BROKER_RELAY, events: ORDER_EMAILS_SUBSCRIPTION.events };
        if !handover::is_subscribed(&mut self.shared, &relaying)? {
            return Err(SplitError::Refused(
                "the outbox does not relay the order events to the broker: start agora with AGORA_BROKER_URL first, \
                 so that the service can receive them"
                    .into(),
            ));
        }
        Ok(())
    }

    fn copy_all(&mut self, report: &mut Report) -> Result<(), SplitError> {
        let started = Instant::now();
        let mut copied = 0_i64;
        let mut after: Option<Uuid> = None;
        loop {
            let mut query =
                notifications::table.select(EmailRow::as_select()).order(notifications::id).limit(BATCH).into_boxed();
            if let Some(last) = after {
                query = query.filter(notifications::id.gt(last));
            }
            let rows: Vec<EmailRow> = query.load(&mut self.shared)?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            copied += upsert_emails(&mut self.service, &rows)? as i64;
            if copied == rows.len() as i64 {
                failpoint("copying");
            }
        }
        let inbox: Vec<InboxRow> = notifications_inbox::table.select(InboxRow::as_select()).load(&mut self.shared)?;
        for chunk in inbox.chunks(BATCH as usize) {
            insert_inbox(&mut self.service, chunk)?;
        }
        diesel::update(notifications_move::table)
            .set((
                notifications_move::copied_rows.eq(copied),
                notifications_move::copied_at.eq(diesel::dsl::now),
                notifications_move::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut self.shared)?;
        report.say(format!(
            "step 1: copied {copied} e-mails and {} inbox entries in {} ms, agora running",
            inbox.len(),
            started.elapsed().as_millis()
        ));
        Ok(())
    }

    /// Step 2: both sides agree, per status, on every row not changed since the copy began.
    fn verify_copy(&mut self, report: &mut Report) -> Result<(), SplitError> {
        // The delta and the checksum from one snapshot: a row written between reading the one and
        // computing the other would count on this side only.
        let (delta, here) = self.shared.build_transaction().repeatable_read().read_only().run(|conn| {
            let delta = Delta::load(conn)?;
            let here = checksums(conn, Rows::AllBut(&delta))?;
            diesel::QueryResult::Ok((delta, here))
        })?;
        let there = checksums(&mut self.service, Rows::AllBut(&delta))?;
        compare(&here, &there)?;
        for line in describe(&here) {
            report.say(format!("step 2: verified {line}"));
        }
        if delta.len() > 0 {
            report.say(format!(
                "step 2: {} rows written since the copy began: the cutover copies and verifies them again",
                delta.len()
            ));
        }
        diesel::update(notifications_move::table)
            .set((notifications_move::step.eq("copied"), notifications_move::updated_at.eq(diesel::dsl::now)))
            .execute(&mut self.shared)?;
        Ok(())
    }

    /// After a verification found the copy different, the next run copies every row again (not
    /// only the delta): whatever made them differ is overwritten. Returns `error`.
    fn start_over_after(&mut self, error: SplitError, report: &mut Report) -> SplitError {
        if matches!(error, SplitError::Mismatch(_)) {
            let reset = diesel::update(notifications_move::table)
                .set(notifications_move::step.eq("copying"))
                .execute(&mut self.shared);
            if let Err(reset) = reset {
                return reset.into();
            }
            report.say("nothing was cut over: run the command again to copy every e-mail again");
        }
        error
    }

    /// Step 3, in one transaction of the shared database: see the module's documentation.
    fn cut_over(&mut self, report: &mut Report) -> Result<(), SplitError> {
        let service = &mut self.service;
        let mut window_start = None;
        let outcome = self.shared.transaction(|conn| -> Result<(i64, usize), SplitError> {
            conn.batch_execute(&format!("SET LOCAL lock_timeout = '{CUTOVER_LOCK_TIMEOUT}'"))?;
            // Publishing reads the subscriptions: the exclusive lock waits for the checkouts in
            // flight and holds new ones until the commit, so no in-process e-mail delivery is
            // created after the ones handed over below.
            handover::hold_publishing(conn)?;
            window_start = Some(Instant::now());
            handover::unsubscribe(conn, ORDER_EMAILS)?;
            let handed = handover::hand_over(conn, ORDER_EMAILS, BROKER_RELAY, HANDED_OVER)?;
            // Writers of e-mails wait from here: what is copied below is final.
            conn.batch_execute("LOCK TABLE notifications, notifications_inbox IN EXCLUSIVE MODE")?;
            // Every row outside the delta was verified in step 2 and has not changed since (the
            // service writes nothing until it holds the e-mails): the delta's rows and the counts
            // are what is left to verify, at a cost that does not grow with the table.
            let delta = Delta::load(conn)?;
            let caught_up = catch_up(conn, service, &delta)?;
            compare(&counts(conn)?, &counts(service)?)?;
            compare(&checksums(conn, Rows::Only(&delta))?, &checksums(service, Rows::Only(&delta))?)?;
            conn.batch_execute(DROP_TRACKING)?;
            conn.batch_execute(WRITE_LOCK)?;
            diesel::update(notifications_move::table)
                .set((
                    notifications_move::step.eq("cut_over"),
                    notifications_move::cut_over_at.eq(diesel::dsl::now),
                    notifications_move::caught_up_rows.eq(caught_up),
                    notifications_move::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
            failpoint("cutover");
            Ok((caught_up, handed))
        });
        let window = window_start.map(|start| start.elapsed());
        let (caught_up, handed) = outcome?;
        let window = window.unwrap_or_default();
        let window_ms = window.as_secs_f64() * 1000.0;
        diesel::update(notifications_move::table)
            .set(notifications_move::write_window_ms.eq(window_ms))
            .execute(&mut self.shared)?;
        report.say(format!(
            "step 3: cut over: {caught_up} rows copied again under the lock, everything verified, {handed} in-process \
             e-mail deliveries handed to the broker relay, the old tables write-locked"
        ));
        report
            .say(format!("step 4: write window {window_ms:.1} ms: no e-mail could be recorded, and checkouts waited"));
        failpoint("handover");
        Ok(())
    }

    /// The service holds the e-mails from now on, and starts consuming its queue.
    fn hand_to_service(&mut self, report: &mut Report) -> Result<(), SplitError> {
        self.service.transaction(|conn| service::set_holder(conn, Holder::Service))?;
        report.say(
            "the notifications service holds the e-mails now and consumes its queue: restart agora with \
             AGORA_NOTIFICATIONS_URL set (its e-mail pages and the order view then ask the service)",
        );
        Ok(())
    }

    /// Rollback 1: the service stops writing (the holder changes once the messages in flight are
    /// done) and its tables refuse writes.
    fn fence_service(&mut self) -> Result<(), SplitError> {
        self.service.transaction(|conn| {
            conn.batch_execute(&format!("SET LOCAL lock_timeout = '{CUTOVER_LOCK_TIMEOUT}'"))?;
            service::set_holder(conn, Holder::Shared)?;
            conn.batch_execute("LOCK TABLE notifications, notifications_inbox IN EXCLUSIVE MODE")?;
            conn.batch_execute(WRITE_LOCK)
        })?;
        Ok(())
    }

    /// Rollback 2, in one transaction of the shared database: every row of the service's comes
    /// back, the write lock goes, the in-process e-mails are subscribed again, and the e-mail
    /// events without an e-mail (still in the queue) get an in-process delivery.
    fn copy_back(&mut self, state: &MoveState, report: &mut Report) -> Result<(), SplitError> {
        let service = &mut self.service;
        let started = state.started_at;
        let (copied, revived) = self.shared.transaction(|conn| -> Result<(usize, usize), SplitError> {
            conn.batch_execute(&format!("SET LOCAL lock_timeout = '{CUTOVER_LOCK_TIMEOUT}'"))?;
            handover::hold_publishing(conn)?;
            conn.batch_execute(LIFT_WRITE_LOCK)?;
            let mut copied = 0;
            let mut after: Option<Uuid> = None;
            loop {
                let mut query = notifications::table
                    .select(EmailRow::as_select())
                    .order(notifications::id)
                    .limit(BATCH)
                    .into_boxed();
                if let Some(last) = after {
                    query = query.filter(notifications::id.gt(last));
                }
                let rows: Vec<EmailRow> = query.load(service)?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id);
                copied += upsert_emails(conn, &rows)?;
            }
            let inbox: Vec<InboxRow> = notifications_inbox::table.select(InboxRow::as_select()).load(service)?;
            for chunk in inbox.chunks(BATCH as usize) {
                insert_inbox(conn, chunk)?;
            }
            handover::add_subscription(conn, &ORDER_EMAILS_SUBSCRIPTION)?;
            let revived = revive_missing_emails(conn, started)?;
            let everything = Delta::default();
            compare(&checksums(conn, Rows::AllBut(&everything))?, &checksums(service, Rows::AllBut(&everything))?)?;
            diesel::update(notifications_move::table)
                .set((
                    notifications_move::step.eq("rolled_back"),
                    notifications_move::rolled_back_at.eq(diesel::dsl::now),
                    notifications_move::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
            failpoint("rollback-copy");
            Ok((copied, revived))
        })?;
        report.say(format!(
            "rollback 2: {copied} e-mails back in the shared database (those recorded by the service included), the \
             write lock lifted, {revived} e-mails of events the service had not taken yet queued in process"
        ));
        Ok(())
    }

    /// After a rollback nobody consumes the service's queue: it goes, rather than growing.
    fn delete_queue(&self, report: &mut Report) {
        let Some(broker) = &self.config.broker else { return };
        match super::consumer::delete_queue_now(broker) {
            Ok(()) => report
                .say(format!("deleted the service's queue {}: nobody consumes it now", broker.notifications_queue)),
            Err(error) => report.say(format!(
                "could not delete the service's queue {} ({error}); delete it by hand unless agora consumes it \
                 (AGORA_NOTIFICATIONS_CONSUMER=broker)",
                broker.notifications_queue
            )),
        }
    }
}

/// Upserts whole e-mails by id, every column overwritten (a copy is made right whatever it
/// held); returns how many.
fn upsert_emails(conn: &mut PgConnection, rows: &[EmailRow]) -> diesel::QueryResult<usize> {
    use crate::schema::notifications::dsl::*;
    diesel::insert_into(notifications)
        .values(rows)
        .on_conflict(id)
        .do_update()
        .set((
            (event_id.eq(excluded(event_id)), order_id.eq(excluded(order_id)), kind.eq(excluded(kind))),
            (recipient.eq(excluded(recipient)), subject.eq(excluded(subject)), message_id.eq(excluded(message_id))),
            (text_body.eq(excluded(text_body)), html_body.eq(excluded(html_body)), created_at.eq(excluded(created_at))),
            status.eq(excluded(status)),
            attempts.eq(excluded(attempts)),
            last_error.eq(excluded(last_error)),
            sent_at.eq(excluded(sent_at)),
            updated_at.eq(excluded(updated_at)),
            next_attempt_at.eq(excluded(next_attempt_at)),
            round_attempts.eq(excluded(round_attempts)),
        ))
        .execute(conn)
}

fn insert_inbox(conn: &mut PgConnection, rows: &[InboxRow]) -> diesel::QueryResult<usize> {
    diesel::insert_into(notifications_inbox::table).values(rows).on_conflict_do_nothing().execute(conn)
}

/// The delta's rows copied again; returns how many.
fn catch_up(shared: &mut PgConnection, service: &mut PgConnection, delta: &Delta) -> diesel::QueryResult<i64> {
    for chunk in delta.emails.chunks(BATCH as usize) {
        let rows: Vec<EmailRow> =
            notifications::table.filter(notifications::id.eq_any(chunk)).select(EmailRow::as_select()).load(shared)?;
        upsert_emails(service, &rows)?;
    }
    for chunk in delta.inbox.chunks(BATCH as usize) {
        let rows: Vec<InboxRow> = notifications_inbox::table
            .filter(notifications_inbox::event_id.eq_any(chunk))
            .select(InboxRow::as_select())
            .load(shared)?;
        insert_inbox(service, &rows)?;
    }
    Ok(delta.len() as i64)
}

/// After a rollback: the e-mail events since the move began (or handed over by it) that have no
/// e-mail get an in-process delivery. Returns how many.
fn revive_missing_emails(conn: &mut PgConnection, since: DateTime<Utc>) -> diesel::QueryResult<usize> {
    // A minute's margin: an event committed just before the move began may have been relayed
    // before the queue existed.
    let candidates =
        handover::events_since(conn, &ORDER_EMAILS_SUBSCRIPTION, since - chrono::Duration::minutes(1), HANDED_OVER)?;
    let written: Vec<i64> = notifications::table
        .filter(notifications::event_id.eq_any(&candidates))
        .select(notifications::event_id)
        .load(conn)?;
    let missing: Vec<i64> = candidates.into_iter().filter(|event| !written.contains(event)).collect();
    handover::deliver_again(conn, &missing, ORDER_EMAILS)?;
    Ok(missing.len())
}

/// Per status: how many e-mails and a checksum of every column but `updated_at`; plus the inbox.
#[derive(Debug, PartialEq, Eq, QueryableByName)]
struct Checksum {
    #[diesel(sql_type = Text)]
    part: String,
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = Text)]
    checksum: String,
}

/// Which rows a verification covers: the delta's rows only, or every row but the delta's.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Only(&'a Delta),
    AllBut(&'a Delta),
}

/// The rows written since the copy began, by key.
#[derive(Debug, Default)]
struct Delta {
    emails: Vec<Uuid>,
    inbox: Vec<i64>,
}

impl Delta {
    fn load(conn: &mut PgConnection) -> diesel::QueryResult<Delta> {
        let keys: Vec<(String, String)> = notifications_delta::table
            .select((notifications_delta::table_name, notifications_delta::key))
            .load(conn)?;
        let mut delta = Delta::default();
        for (table, key) in keys {
            match table.as_str() {
                "notifications" => delta.emails.extend(key.parse::<Uuid>().ok()),
                _ => delta.inbox.extend(key.parse::<i64>().ok()),
            }
        }
        Ok(delta)
    }

    fn len(&self) -> usize {
        self.emails.len() + self.inbox.len()
    }
}

/// Per status, the e-mails of `rows` and a checksum of every column but `updated_at`; the same of
/// the inbox. A part with no row is absent.
fn checksums(conn: &mut PgConnection, rows: Rows) -> diesel::QueryResult<BTreeMap<String, (i64, String)>> {
    let (delta, only) = match rows {
        Rows::Only(delta) => (delta, true),
        Rows::AllBut(delta) => (delta, false),
    };
    let rows: Vec<Checksum> = diesel::sql_query(
        "SELECT 'status ' || status AS part, count(*) AS rows,
                md5(string_agg(concat_ws('|', id, event_id, order_id, kind, md5(recipient), md5(subject),
                    md5(text_body), md5(html_body), message_id, attempts, round_attempts,
                    coalesce(md5(last_error), '-'), coalesce(extract(epoch FROM sent_at)::text, '-'),
                    extract(epoch FROM created_at)::text, extract(epoch FROM next_attempt_at)::text),
                    ',' ORDER BY id)) AS checksum
           FROM notifications WHERE (id = ANY($1)) = $3 GROUP BY status
         UNION ALL
         SELECT 'inbox', count(*), md5(string_agg(event_id::text || ':' || event_type, ',' ORDER BY event_id))
           FROM notifications_inbox WHERE (event_id = ANY($2)) = $3 HAVING count(*) > 0",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&delta.emails)
    .bind::<Array<BigInt>, _>(&delta.inbox)
    .bind::<diesel::sql_types::Bool, _>(only)
    .load(conn)?;
    Ok(rows.into_iter().map(|row| (row.part, (row.rows, row.checksum))).collect())
}

/// Per status, how many e-mails; and how many inbox entries. Cheap enough to take under the lock.
fn counts(conn: &mut PgConnection) -> diesel::QueryResult<BTreeMap<String, (i64, String)>> {
    let rows: Vec<Checksum> = diesel::sql_query(
        "SELECT 'status ' || status AS part, count(*) AS rows, '' AS checksum FROM notifications GROUP BY status
         UNION ALL
         SELECT 'inbox', count(*), '' FROM notifications_inbox HAVING count(*) > 0",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|row| (row.part, (row.rows, row.checksum))).collect())
}

fn compare(here: &BTreeMap<String, (i64, String)>, there: &BTreeMap<String, (i64, String)>) -> Result<(), SplitError> {
    if here == there {
        return Ok(());
    }
    let parts: std::collections::BTreeSet<&String> = here.keys().chain(there.keys()).collect();
    let differences: Vec<String> = parts
        .into_iter()
        .filter(|part| here.get(*part) != there.get(*part))
        .map(|part| {
            let count = |side: &BTreeMap<String, (i64, String)>| side.get(part).map_or(0, |(rows, _)| *rows);
            format!("{part}: {} shared, {} in the service's database", count(here), count(there))
        })
        .collect();
    Err(SplitError::Mismatch(differences.join("; ")))
}

fn describe(sums: &BTreeMap<String, (i64, String)>) -> Vec<String> {
    sums.iter()
        .map(|(part, (rows, checksum))| format!("{part}: {rows} rows, checksum {checksum} on both sides"))
        .collect()
}

fn failpoint(point: &str) {
    if std::env::var(FAILPOINT_VARIABLE).is_ok_and(|wanted| wanted == point) {
        println!("paused at {point}");
        std::thread::sleep(Duration::from_secs(60));
    }
}
