//! Agora's integration tests: one binary, so it links once. Each test runs the real application
//! over HTTP on a PostgreSQL database of its own (see `helpers`).

mod admin;
mod architecture;
mod broker;
mod broker_faults;
mod browser;
mod catalog;
mod cluster;
mod consumer;
mod contract;
mod dashboard;
mod email_golden;
mod events_page;
mod experiment;
mod faults;
mod health;
mod helpers;
mod hostile;
mod inventory;
mod listing;
mod metrics;
mod migrations;
mod notifications;
mod orders;
mod payments;
mod rabbit;
mod read_path;
mod refunds;
mod roles;
mod seed;
mod sessions;
mod smtp;
mod split;
mod split_faults;
mod stopping;
mod topology;
