//! The staff API, end to end: the real router over HTTP on loopback, a real
//! SQLite file, the real worker and the demo providers.

mod helpers;

mod automation;
mod deployment;
mod drift;
mod dry_run;
mod faults;
mod import;
mod management;
mod matrix;
mod metrics;
mod people;
mod real;
mod reports;
mod tokens;
mod trust;
mod webhooks;
