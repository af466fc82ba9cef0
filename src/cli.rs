//! The `agora` command line: `serve` (the default), `migrate`, `seed`, `worker`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::error::CauseChain;

#[derive(Debug, Parser)]
#[command(
    name = "agora",
    version,
    about = "An e-commerce modular monolith over one shared PostgreSQL database",
    long_about = "An e-commerce modular monolith over one shared PostgreSQL database.\n\n\
                  Configuration comes from the environment (and a .env file): DATABASE_URL, AGORA_BIND, \
                  AGORA_ADMIN_TOKEN, AGORA_ADMIN_PASSWORD, AGORA_CURRENCY, AGORA_SMTP_URL, AGORA_MAIL_FROM, \
                  AGORA_SEED, AGORA_PAYMENT_TIMEOUT_SECS, RUST_LOG. See the README for all of them."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the JSON API and the admin pages (the default). Creates, migrates and seeds the
    /// database on first start, and runs the event dispatcher and the payment-timeout sweeper.
    Serve,
    /// Create the database if needed, apply pending migrations, and exit.
    Migrate,
    /// Add demo data: products with stock, customers, and orders in every status.
    Seed(SeedArgs),
    /// Run only the background work (event dispatcher, e-mails, payment timeouts), no HTTP. Waits
    /// for the database and for its schema (brought up to date by `serve` or `migrate`).
    Worker,
    /// Experiments on scratch databases of their own (created and dropped; never the shop's data).
    #[command(subcommand)]
    Experiment(Experiment),
    /// Run the notifications module alone, as a service on a database of its own
    /// (AGORA_NOTIFICATIONS_DATABASE_URL), consuming its queue on the broker (AGORA_BROKER_URL) and
    /// serving its HTTP API on AGORA_BIND. Creates and migrates its database on start.
    NotificationsService,
    /// Move a module out of the shared database onto its service's own database.
    #[command(subcommand)]
    Split(Split),
}

#[derive(Debug, Subcommand)]
enum Split {
    /// Move notifications to AGORA_NOTIFICATIONS_DATABASE_URL while agora runs: copy, verify, cut
    /// over under a write lock, report the write window. Run again after a crash: it resumes.
    Notifications(SplitArgs),
}

#[derive(Debug, Args)]
struct SplitArgs {
    /// Move the e-mails back to the shared database (those the service recorded included).
    #[arg(long, conflicts_with = "contract")]
    rollback: bool,
    /// Drop the shared database's old e-mail tables, once cut over (no way back after it).
    #[arg(long)]
    contract: bool,
}

#[derive(Debug, Subcommand)]
enum Experiment {
    /// Race buyers for the same stock three ways: Agora's shared transaction, separate services
    /// with a saga, and a naive read-then-write; print what each sold, refused, compensated and
    /// left orphaned.
    CheckoutRace(RaceArgs),
}

#[derive(Debug, Args)]
struct RaceArgs {
    /// Buyers racing at once.
    #[arg(long, default_value_t = 200)]
    buyers: u32,
    /// Units of each product in stock.
    #[arg(long, default_value_t = 10)]
    stock: u32,
    /// Products per order (one unit each).
    #[arg(long, default_value_t = 1)]
    lines: u32,
    /// Seed of the injected failures: the same seed, the same failures.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of separate-services checkouts in which a step fails or the process dies (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    failure_rate: f64,
}

#[derive(Debug, Args)]
struct SeedArgs {
    /// How many products to add.
    #[arg(long, default_value_t = 24)]
    products: u32,
    /// How many customers to add.
    #[arg(long, default_value_t = 12)]
    customers: u32,
    /// How many orders to place (spread over every status).
    #[arg(long, default_value_t = 30)]
    orders: u32,
}

pub fn run() -> ExitCode {
    // Like the diesel CLI: a .env file in the working directory is optional.
    let _ = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            log::error!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };

    let outcome: Result<(), Box<dyn std::error::Error>> = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => until_done(crate::startup::serve(config)),
        Command::Migrate => crate::startup::prepare_database(&config).map_err(Into::into),
        Command::Seed(args) => seed(config, args),
        Command::Worker => until_done(crate::startup::work(config)),
        Command::Experiment(Experiment::CheckoutRace(args)) => checkout_race(&config, args),
        Command::NotificationsService => until_done(crate::notifications::service::run(config)),
        Command::Split(Split::Notifications(args)) => split_notifications(&config, &args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{}", CauseChain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Runs a long-lived command on an actix system, and leaves without dropping it: dropping a
/// runtime waits for every blocking task, and a start-up step that a stop signal cut short (a
/// migration waiting for a lock, a connection attempt) must not hold the process. Whatever ran
/// in those threads ends with the process, as it would on a crash: nothing is half-committed.
fn until_done(
    command: impl std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(command);
    std::mem::forget(system);
    outcome
}

fn seed(config: Config, args: SeedArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::startup::prepare_database(&config)?;
    let db = crate::db::Db::connect(&config.database_url, &config.pool);
    let plan = crate::seed::SeedPlan { products: args.products, customers: args.customers, orders: args.orders };
    // Every demo payment logs a line: thousands for a large seed. The bar says how far it got;
    // unless RUST_LOG asks for more, only warnings print meanwhile.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let started = std::time::Instant::now();
    let progress = TerminalProgress::new();
    let report = crate::seed::seed(&db, &config, &plan, &progress);
    progress.bar.finish_and_clear();
    println!("seeded {} in {:.1} s", report?, started.elapsed().as_secs_f64());
    Ok(())
}

fn split_notifications(config: &Config, args: &SplitArgs) -> Result<(), Box<dyn std::error::Error>> {
    use crate::notifications::split;
    let moved = if args.rollback {
        split::rollback(config)
    } else if args.contract {
        split::contract(config)
    } else {
        split::split(config)
    };
    moved.map_err(Into::into)
}

fn checkout_race(config: &Config, args: RaceArgs) -> Result<(), Box<dyn std::error::Error>> {
    let options = crate::experiment::RaceOptions {
        buyers: args.buyers,
        stock: args.stock,
        lines: args.lines,
        seed: args.seed,
        failure_rate: args.failure_rate,
    };
    options.check()?;
    // What runs that died left behind goes first (a live run's, in another process, stays).
    crate::experiment::remove_leftovers_at_start(config);
    let outcomes = crate::experiment::checkout_race(config, &options)?;
    print!("{}", crate::experiment::table(&options, &outcomes));
    Ok(())
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct TerminalProgress {
    bar: indicatif::ProgressBar,
}

impl TerminalProgress {
    fn new() -> TerminalProgress {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({eta} left)")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        TerminalProgress { bar }
    }
}

impl crate::seed::Progress for TerminalProgress {
    fn stage(&self, name: &'static str, total: u64) {
        self.bar.set_message(name);
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    fn step(&self) {
        self.bar.inc(1);
    }
}
