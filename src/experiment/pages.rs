//! `/admin/experiments/checkout-race`: run the race from the admin pages and see its results as
//! a table and a chart.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{ExperimentError, Outcome, RaceOptions};
use crate::admin::page::{FormErrors, Layout, PageError, Section, render, render_with_status};
use crate::admin::session::{Admin, CsrfForm, CsrfProtected};
use crate::error::AppError;
use crate::http::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/experiments/checkout-race").route(web::get().to(show)).route(web::post().to(run)));
}

#[derive(Template)]
#[template(path = "experiment/templates/checkout_race.html")]
struct RacePage {
    layout: Layout,
    form: RaceForm,
    errors: FormErrors,
    /// The options run and what each variant did, once run.
    results: Option<(RaceOptions, Vec<Outcome>)>,
    chart: String,
    /// Why the run asked for did not happen or did not finish.
    failure: Option<String>,
}

impl RacePage {
    /// (name, label, value as typed) of each field.
    fn fields(&self) -> [(&'static str, &'static str, &str); 5] {
        [
            ("buyers", "Buyers", &self.form.buyers),
            ("stock", "Units of each product in stock", &self.form.stock),
            ("lines", "Products per order", &self.form.lines),
            ("seed", "Seed", &self.form.seed),
            ("failure_rate", "Failure rate (separate services)", &self.form.failure_rate),
        ]
    }
}

/// The form as typed, kept to show it again.
#[derive(Debug, Deserialize)]
struct RaceForm {
    #[serde(default)]
    csrf_token: String,
    buyers: String,
    stock: String,
    lines: String,
    seed: String,
    failure_rate: String,
}

impl CsrfProtected for RaceForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl RaceForm {
    fn from_options(options: &RaceOptions) -> RaceForm {
        RaceForm {
            csrf_token: String::new(),
            buyers: options.buyers.to_string(),
            stock: options.stock.to_string(),
            lines: options.lines.to_string(),
            seed: options.seed.to_string(),
            failure_rate: options.failure_rate.to_string(),
        }
    }

    /// Every field's problem at once.
    fn options(&self) -> Result<RaceOptions, FormErrors> {
        let mut errors = FormErrors::default();
        let mut whole = |field: &str, text: &str, low: u64, high: u64| -> u64 {
            match text.trim().parse::<u64>() {
                Ok(value) if (low..=high).contains(&value) => value,
                _ => {
                    errors.push(field, format!("a whole number from {low} to {high}"));
                    0
                }
            }
        };
        let buyers = whole("buyers", &self.buyers, 1, 2000) as u32;
        let stock = whole("stock", &self.stock, 1, 100_000) as u32;
        let lines = whole("lines", &self.lines, 1, 5) as u32;
        let seed = whole("seed", &self.seed, 0, u64::from(u32::MAX));
        let failure_rate = match self.failure_rate.trim().parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
            _ => {
                errors.push("failure_rate", "a number from 0 to 1, e.g. 0.1");
                0.0
            }
        };
        if errors.is_empty() { Ok(RaceOptions { buyers, stock, lines, seed, failure_rate }) } else { Err(errors) }
    }
}

async fn show(admin: Admin) -> Result<HttpResponse, PageError> {
    render(&RacePage {
        layout: admin.layout(Section::Architecture),
        form: RaceForm::from_options(&RaceOptions::default()),
        errors: FormErrors::default(),
        results: None,
        chart: String::new(),
        failure: None,
    })
}

async fn run(
    state: web::Data<AppState>,
    admin: Admin,
    CsrfForm(form): CsrfForm<RaceForm>,
) -> Result<HttpResponse, PageError> {
    let options = match form.options() {
        Ok(options) => options,
        Err(errors) => {
            let page = RacePage {
                layout: admin.layout(Section::Architecture),
                form,
                errors,
                results: None,
                chart: String::new(),
                failure: None,
            };
            return render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let Some(permit) = state.experiments.try_start() else {
        let failure = format!(
            "Another checkout race is running, and this process runs {} at a time (AGORA_EXPERIMENT_MAX_RUNS). \
             Nothing was started; try again when it has finished.",
            state.experiments.max()
        );
        return refused(&admin, form, failure);
    };
    let config = state.config.clone();
    let deadline = config.experiment.deadline;
    let ran = options.clone();
    let running = web::block(move || {
        // The permit is given back when the run has ended, not when this request gives up on it.
        let _permit = permit;
        super::checkout_race(&config, &ran)
    });
    // The run keeps its own deadline; this bound holds even should the database stop answering.
    let outcomes = match tokio::time::timeout(deadline + ANSWER_GRACE, running).await {
        Ok(finished) => match finished.map_err(AppError::internal)? {
            Ok(outcomes) => outcomes,
            Err(error) => return refused(&admin, form, failure_text(&error)),
        },
        Err(_elapsed) => {
            let failure = format!(
                "The race did not finish within {} (AGORA_EXPERIMENT_DEADLINE_SECS), and has not stopped yet: the \
                 database does not answer. It stops, and drops its scratch databases, as soon as it can.",
                super::duration_text(&deadline)
            );
            return refused(&admin, form, failure);
        }
    };
    render(&RacePage {
        layout: admin.layout(Section::Architecture),
        form,
        errors: FormErrors::default(),
        chart: chart(&outcomes),
        results: Some((options, outcomes)),
        failure: None,
    })
}

/// How long after its deadline a run may take to stop and drop its databases before the page
/// answers without waiting for it.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What the operator is told when a run failed or could not start. The run has ended by then
/// (unless the database stopped answering), and dropped its scratch databases.
fn failure_text(error: &ExperimentError) -> String {
    match error {
        ExperimentError::Deadline(limit) => format!(
            "The race did not finish within {} (AGORA_EXPERIMENT_DEADLINE_SECS), so it was stopped and its scratch \
             databases were dropped. Try fewer buyers or products, or allow it more time.",
            super::duration_text(limit)
        ),
        other => format!(
            "The race failed and was stopped: {other}. Its scratch databases were dropped; nothing of the shop's \
             was touched. Run it again."
        ),
    }
}

/// The form again with why nothing (or nothing complete) came of it: 503, to be tried again later.
fn refused(admin: &Admin, form: RaceForm, failure: String) -> Result<HttpResponse, PageError> {
    log::warn!("checkout race: {failure}");
    let page = RacePage {
        layout: admin.layout(Section::Architecture),
        form,
        errors: FormErrors::default(),
        results: None,
        chart: String::new(),
        failure: Some(failure),
    };
    let mut response = render_with_status(StatusCode::SERVICE_UNAVAILABLE, &page)?;
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(crate::error::RETRY_AFTER_SECONDS),
    );
    Ok(response)
}

/// Units sold against units in stock, a bar per variant, with the orphaned reservations beside.
fn chart(outcomes: &[Outcome]) -> String {
    let (left, bar_width, row) = (200.0, 420.0, 46.0);
    let most =
        outcomes.iter().map(|outcome| outcome.units_sold.max(outcome.units_in_stock)).max().unwrap_or(1).max(1) as f64;
    let scale = |units: u64| units as f64 / most * bar_width;
    let height = 30.0 + row * outcomes.len() as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 720 {height}\" width=\"720\" height=\"{height}\" role=\"img\" aria-labelledby=\"race-chart-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"race-chart-title\">Units sold against units in stock, by variant</title>"
    );
    for (index, outcome) in outcomes.iter().enumerate() {
        let y = 10.0 + row * index as f64;
        let sold = scale(outcome.units_sold);
        let stock = scale(outcome.units_in_stock);
        let class = if outcome.oversold > 0 { "bar-over" } else { "bar-ok" };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{:.0}\" class=\"chart-label\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.0}\" width=\"{sold:.1}\" height=\"24\" class=\"{class}\"></rect>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" class=\"chart-limit\"></line>\
             <text x=\"{:.1}\" y=\"{:.0}\" class=\"chart-value\">{} sold / {} in stock{}</text>",
            y + 17.0,
            outcome.variant,
            left + stock,
            left + stock,
            y - 4.0,
            y + 28.0,
            left + sold.max(stock) + 6.0,
            y + 17.0,
            outcome.units_sold,
            outcome.units_in_stock,
            if outcome.orphaned > 0 { format!(", {} orphaned", outcome.orphaned) } else { String::new() },
        ));
    }
    svg.push_str("</svg>");
    svg
}
